"""Small JSON records a client keeps between rounds (its round history, its DP ledger), written
atomically: a crash leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def load(path: str | os.PathLike[str], what: str) -> dict[str, Any] | None:
    """The record saved at ``path``, or ``None`` if there is no file yet.

    Raises:
        ValueError: the file exists but is not a JSON object (a corrupt record is never read
            as an empty one).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} at {os.fspath(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{what} at {os.fspath(path)!r} is not a JSON object")
    return record


def save(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Writes ``record`` to ``path`` durably: a temporary file in the same directory, fsynced,
    renamed over the old one, and the directory fsynced."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".secagg-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)
