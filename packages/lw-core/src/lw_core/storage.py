"""Writing tensors and bytes so that storage refusing a write (a full disk, a read-only mount) is an
`OSError` that names the file: what `cli_errors` prints as one line. safetensors reports it as a
`SafetensorError` and torch.save as a `RuntimeError`, neither with an errno nor the file's name."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextlib.contextmanager
def named_write_errors(path: str | Path) -> Iterator[None]:
    """Within this block an OSError without a file name gets `path`'s, and a library's error that
    carries an errno (`... (os error 28)`) becomes that OSError."""
    try:
        yield
    except OSError as err:
        if err.filename or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err
    except Exception as err:
        found = _OS_ERROR.search(str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from err


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    with named_write_errors(path), open(path, "wb") as handle:
        handle.write(data)
    return path


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path) -> Path:
    """safetensors' `save_file` of contiguous CPU copies, its write errors as named OSErrors."""
    from safetensors.torch import save_file

    with named_write_errors(path):
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    return Path(path)


def save_torch(obj: Any, path: str | Path) -> Path:
    """`torch.save`, serialised in memory first so that a refused write is the OSError of a plain write."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getvalue())
