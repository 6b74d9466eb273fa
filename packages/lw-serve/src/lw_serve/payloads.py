"""Request bodies, checked before anything is queued: each problem is one line naming the bad field and
what would be accepted (400 for a body that is not a JSON object, 415 for another content type, 422 for
a JSON object of the wrong shape)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def json_object(body: bytes, content_type: str | None, allowed: set[str]) -> dict[str, Any]:
    """The body as a JSON object with only `allowed` keys."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(415, f"content type {kind or 'none'!r} is not accepted; send application/json")
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise BadRequest(400, f"body is not valid JSON: {str(err).splitlines()[0]}") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, f"body must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise BadRequest(422, f"unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def string_list(payload: dict[str, Any], key: str, max_items: int, max_chars: int | None = None) -> list[str]:
    """`payload[key]`: a non-empty list of at most `max_items` strings (each at most `max_chars` long)."""
    if key not in payload:
        raise BadRequest(422, f"missing field {key!r} (a list of strings)")
    values = payload[key]
    if not isinstance(values, list):
        raise BadRequest(422, f"{key!r} must be a list of strings, got {type(values).__name__}")
    if not values:
        raise BadRequest(422, f"{key!r} is empty; send 1 to {max_items} items")
    if len(values) > max_items:
        raise BadRequest(422, f"{key!r} has {len(values)} items; at most {max_items} per request")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequest(422, f"{key}[{i}] must be a string, got {type(value).__name__}")
        if max_chars is not None and len(value) > max_chars:
            raise BadRequest(422, f"{key}[{i}] has {len(value)} characters; at most {max_chars}")
        if max_chars is not None and not value.strip():
            raise BadRequest(422, f"{key}[{i}] is blank")
    return values


def texts(payload: dict[str, Any], max_items: int, max_chars: int) -> list[str]:
    return string_list(payload, "texts", max_items, max_chars)


def expect(payload: dict[str, Any], key: str, want: Any, what: str) -> None:
    """A message header field (`bridge`, `wire`, `shape`, `group_size`) must match this receiver's."""
    if key not in payload:
        raise BadRequest(422, f"missing field {key!r}: {what} {want!r}")
    if payload[key] != want:
        raise BadRequest(422, f"{key} {payload[key]!r} does not match this receiver's {what} {want!r}")


def message_payloads(payload: dict[str, Any], max_items: int) -> list[bytes]:
    """The base64 messages of a decode request, as bytes."""
    out = []
    for i, text in enumerate(string_list(payload, "messages", max_items)):
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest(422, f"messages[{i}] is not valid base64") from None
    return out
