"""Dataclass configs and the command lines generated from them: defaults ← `--config` file ← flags.

A config is a dataclass whose fields carry help text in `metadata={"help": ...}` (optionally
`"choices"`, `"positional": True` for a positional argument, and what `lw_core.options.shared_field`
sets: `"flag"` and `"help_title"` of a shared option, `"one_value"`, deprecated `"aliases"`), validated in
`__post_init__`. A parsed config's `threads` is applied (`torch.set_num_threads`).
`parse_config` builds one command's parser from it; `parse_command` builds a command with
subcommands (`lw-tasks show`, `lw-bench latency`), each from its own dataclass. Values from files
and from `field=value` text are converted by the field's annotation, with a one-line error when
they do not fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from lw_registry.files import read_mapping

from lw_core.errors import LwError
from lw_core.options import apply_threads

C = TypeVar("C")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `LwError` line (CLIs print it as `error: ...`), not the usage."""

    def error(self, message: str) -> typing.NoReturn:
        raise LwError(f"{self.prog}: {message} (see {self.prog} --help)")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON, TOML or YAML file of config values (a mapping)."""
    return read_mapping(path, what="config file", error=LwError)


def field_kind(annotation: Any) -> tuple[type, bool, bool]:
    """(element type, is a list, None allowed) of a field annotation."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"Path": Path})  # annotations are postponed strings
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = len(args) < len(typing.get_args(annotation)), args[0]
    if typing.get_origin(annotation) in (list, tuple):
        return typing.get_args(annotation)[0], True, optional
    return annotation, False, optional


def _scalar(value: Any, kind: type, name: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise LwError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise LwError(f"{name}: expected {kind.__name__}, got {value!r}")
        try:
            number = kind(value)
        except ValueError:
            raise LwError(f"{name}: expected {kind.__name__}, got {value!r}") from None
        if kind is int and isinstance(value, float) and value != number:
            raise LwError(f"{name}: expected int, got {value!r}")
        return number
    if kind is str and not isinstance(value, (str, int, float)) or isinstance(value, bool) and kind is str:
        raise LwError(f"{name}: expected text, got {value!r}")
    return str(value) if kind is str else value


def coerce(cls: type, name: str, value: Any) -> Any:
    """`value` (from a file, or text) as field `name` of `cls` expects it; a one-line error otherwise."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]  # type: ignore[arg-type]
    kind, is_list, optional = field_kind(f.type)
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise LwError(f"{name}: a value is required")
    if is_list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise LwError(f"{name}: expected a list, got {value!r}")
        return [_at_least(f, _scalar(v, kind, name)) for v in items if v != ""]
    return _at_least(f, _scalar(value, kind, name))


def _at_least(f: dataclasses.Field, value: Any) -> Any:
    """A field's `min` (metadata) enforced: `--threads -3` is one line, not a library's traceback."""
    minimum = f.metadata.get("min")
    if minimum is not None and value < minimum:
        raise LwError(f"{f.name}: must be at least {minimum}, got {value!r}")
    return value


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Construct `cls` from a mapping, rejecting unknown keys with the list of known ones."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise LwError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {k: coerce(cls, k, v) for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise LwError(f"invalid {cls.__name__}: {err}") from None


def help_title(cls: type, f: dataclasses.Field) -> str | None:
    """The `--help` heading of field `f` of `cls`: its option group's `help_title` (read from the most
    basic class in the MRO that declares the field: a subclass may redeclare a group's field to change
    its default, it stays in its group), or the one `shared_field` recorded; None for a command's own."""
    if "help_title" in f.metadata:
        return f.metadata["help_title"]
    owner = next(c for c in reversed(cls.__mro__) if f.name in vars(c).get("__annotations__", {}))
    return vars(owner).get("help_title")


def flag_name(f: dataclasses.Field) -> str:
    """A field's command-line name: `--receivers` for a field declared with `shared_field(..., "receivers")`."""
    return "--" + f.metadata.get("flag", f.name).replace("_", "-")


def _default_text(default: Any) -> str:
    return " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)


class _OneValue(argparse.Action):
    """A list flag (`--receivers`) on a command that takes exactly one value."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) != 1:
            parser.error(f"{option_string}: this command takes exactly one value, got {len(values)}: {' '.join(values)}")
        setattr(namespace, self.dest, values[0])


class _DeprecatedAlias(argparse.Action):
    """An old flag name that still works; it says once on stderr which name to use instead."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.warned = new, False

    def __call__(self, parser, namespace, values, option_string=None):
        if not self.warned:
            print(f"{parser.prog}: {option_string} is deprecated; use {self.new}", file=sys.stderr)
            self.warned = True
        setattr(namespace, self.dest, values)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--field-name` flag per dataclass field; defaults are left unset so files can fill them.
    Fields of the shared option groups are listed under their group's title in `--help`."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        title = help_title(cls, f)
        target = groups.setdefault(title, parser.add_argument_group(title)) if title else parser
        kind, is_list, _ = field_kind(f.type)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": meta.get("help", "")}
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if default is not dataclasses.MISSING and default != "":
            kwargs["help"] += f" (default: {_default_text(default)})"
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind if kind in (int, float, str) else str
            if is_list or meta.get("one_value"):
                kwargs["nargs"] = "+"
            if meta.get("one_value"):
                kwargs["action"] = _OneValue
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
        if meta.get("positional"):
            target.add_argument(f.name, **kwargs | {"nargs": "?" if default is not dataclasses.MISSING else None})
            continue
        if meta.get("one_value"):
            kwargs["metavar"] = flag_name(f).removeprefix("--").upper().replace("-", "_")
        target.add_argument(flag_name(f), dest=f.name, **kwargs)
        for alias in meta.get("aliases", ()):
            alias_kwargs = {k: v for k, v in kwargs.items() if k in ("type", "choices", "nargs", "default", "metavar")}
            if meta.get("one_value"):
                alias_kwargs.pop("nargs")
            parser.add_argument("--" + alias.replace("_", "-"), dest=f.name, action=_DeprecatedAlias, new=flag_name(f),
                                help=argparse.SUPPRESS, **alias_kwargs)


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="JSON, TOML or YAML file of option values (flags override it)")


def resolve_config(cls: type[C], args: argparse.Namespace) -> C:
    """`cls` from the parsed namespace: defaults ← the `--config` file ← the flags given."""
    values: dict[str, Any] = _by_field_name(cls, load_config_file(args.config)) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values.update({k: v for k, v in vars(args).items() if k in names})
    config = build_config(cls, values)
    apply_threads(config)
    return config


def _by_field_name(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """A config file's values keyed by field name: a file may use the flag's name (`receivers: [m]` for a
    command whose field is `receiver`), as on the command line."""
    renamed = {f.metadata["flag"]: f for f in dataclasses.fields(cls) if f.metadata.get("flag", f.name) != f.name}
    out = {}
    for key, value in values.items():
        f = renamed.get(key)
        if f is not None and f.metadata.get("one_value") and isinstance(value, list):
            if len(value) != 1:
                raise LwError(f"{key}: this command takes exactly one value, got {value!r}")
            value = value[0]
        out[f.name if f is not None else key] = value
    return out


def parse_config(
    cls: type[C], argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> tuple[C, argparse.Namespace]:
    """Resolve `cls` from defaults ← `--config FILE` ← flags. Returns the config and the parsed namespace."""
    parser = parser or ArgumentParser()
    _add_config_flag(parser)
    add_config_arguments(parser, cls)
    args = parser.parse_args(argv)
    return resolve_config(cls, args), args


def config_argv(config: Any, prefix: Sequence[str] = ()) -> list[str]:
    """The flags that rebuild `config` with `parse_config` (fields at their default left out)."""
    argv = list(prefix)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if value == default or (value is None and default is dataclasses.MISSING):
            continue
        flag = flag_name(f)
        if f.metadata.get("positional"):
            argv.append(str(value))
        elif isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: its help line and the dataclass its options come from."""

    help: str
    config: type


def parse_command(
    prog: str, description: str, commands: dict[str, Command], argv: Sequence[str] | None = None
) -> tuple[str, Any]:
    """`prog COMMAND [options]`, each command's options generated from its dataclass (plus `--config`).
    Returns the command's name and its resolved config. Only the commands named in `argv` get their
    options built: `prog --help` lists the commands by their help lines alone."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        raise LwError(f"unknown command {argv[0]!r}; known: {', '.join(commands)}")
    parser = ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}")
    for name, command in commands.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        if name in argv:
            _add_config_flag(child)
            add_config_arguments(child, command.config)
    args = parser.parse_args(argv)
    return args.command, resolve_config(commands[args.command].config, args)
