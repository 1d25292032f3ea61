"""Atomic file writes, written once: a reader, or a run resumed after a kill, never sees half a file.

Each write goes to a temporary file on the same filesystem (beside the target, or in a staging folder
where the target's folder must hold nothing but finished files), is flushed to disk, and is renamed
over the target; if anything fails the temporary file is removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch


@contextmanager
def atomic_open(path: Path, mode: str = "wb", staging: Optional[Path] = None, **open_kwargs) -> Iterator:
    """A file object whose contents replace `path` only when the block ends without an error."""
    path = Path(path)
    folder = path.parent if staging is None else Path(staging)
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)


def write_json_atomic(path: Path, data: Any, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def torch_save_atomic(payload: Any, path: Path, staging: Optional[Path] = None) -> None:
    with atomic_open(path, "wb", staging=staging) as stream:
        torch.save(payload, stream)
