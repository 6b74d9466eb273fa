"""Dataclass configs and the CLI generated from them: defaults ← `--config` file ← flags.

A config is a dataclass whose fields carry help text in `metadata={"help": ...}` (optionally
`"choices"`), validated in `__post_init__`. `parse_config` builds an argparse parser from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from lw_core.errors import LwError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(config: Any) -> str:
    """A stable hash of a config's resolved values (order-independent)."""
    payload = json.dumps(config_to_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON, TOML or YAML file of config values."""
    path = Path(path)
    if not path.is_file():
        raise LwError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise LwError(f"config file {path} must end in .json, .toml, .yaml or .yml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise LwError(f"config file {path} is not valid: {err}") from None
    if not isinstance(data, dict):
        raise LwError(f"config file {path} must hold a mapping of field names to values")
    return data


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Construct `cls` from a mapping, rejecting unknown keys with the list of known ones."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise LwError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise LwError(f"invalid {cls.__name__}: {err}") from None


def _scalar_type(annotation: Any) -> tuple[type, bool]:
    """The argparse type of a field annotation and whether None is allowed."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"Path": Path})  # annotations are postponed strings
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0])[0], True
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], False
    return annotation, False


def _is_list(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("list", "tuple")) or "list[" in annotation
    return typing.get_origin(annotation) in (list, tuple)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--field-name` flag per dataclass field; defaults are left unset so files can fill them."""
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind, _ = _scalar_type(f.type)
        meta = dict(f.metadata)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta.get("help", "")}
        if f.default is not dataclasses.MISSING:
            kwargs["help"] += f" (default: {f.default})"
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind if kind in (int, float, str) else str
            if _is_list(f.type):
                kwargs["nargs"] = "+"
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
        parser.add_argument(flag, **kwargs)


def parse_config(
    cls: type[C], argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> tuple[C, argparse.Namespace]:
    """Resolve `cls` from defaults ← `--config FILE` ← flags. Returns the config and the parsed namespace."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--config", default=None, help="JSON, TOML or YAML file of config values")
    add_config_arguments(parser, cls)
    args = parser.parse_args(argv)
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values.update({k: v for k, v in vars(args).items() if k in names})
    return build_config(cls, values), args
