"""The clients' inputs of a global round: one ``.npy`` per client from a directory (the client
is named by the file's stem), or generated deterministically from a seed and written out, so
that the global result can be checked against numpy over the survivors."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass
class Inputs:
    """The inputs, in client-name order."""

    #: Client name -> its vector.
    arrays: "dict[str, np.ndarray]"
    #: Client name -> the file it came from (a name inside ``directory``).
    files: "dict[str, str]"
    #: The directory holding the files.
    directory: str
    #: Whether they were generated (``False``: read from ``--inputs``).
    generated: bool

    @property
    def dim(self) -> int:
        return len(next(iter(self.arrays.values())))


def _valid_name(name: str) -> bool:
    # As the server accepts client names: 1-128 printable characters.
    return 1 <= len(name) <= 128 and name.isprintable()


def load(directory: str, dim: Optional[int], kind: str) -> Inputs:
    """Reads every ``*.npy`` in ``directory``: one client each, named by the file's stem.

    Raises:
        ValueError: no files, a file that is not a 1-D array of the round's kind (unsigned
            integers for sums, floats for means), lengths that differ (or differ from
            ``dim``), or a stem that cannot be a client name.
    """
    files = sorted(p for p in Path(directory).iterdir() if p.suffix == ".npy" and p.is_file())
    if len(files) < 2:
        raise ValueError(
            f"--inputs {directory!r} holds {len(files)} .npy file(s): need one per client, at "
            "least 2"
        )
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    for p in files:
        name = p.stem
        if not _valid_name(name):
            raise ValueError(
                f"{p}: its stem {name!r} cannot be a client name (1-128 printable characters)"
            )
        try:
            a = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: not a .npy array: {exc}") from exc
        if a.ndim != 1 or a.size == 0:
            raise ValueError(
                f"{p}: shape {a.shape}, but each client's input is one non-empty vector"
            )
        want_float = kind != "sum"
        if want_float and a.dtype.kind != "f":
            raise ValueError(f"{p}: dtype {a.dtype}, but a {kind} round takes float inputs")
        if not want_float and a.dtype.kind != "u":
            raise ValueError(f"{p}: dtype {a.dtype}, but a sum round takes unsigned integer inputs")
        if dim is not None and a.size != dim:
            raise ValueError(f"{p}: {a.size} values, but --dim is {dim}")
        if arrays and a.size != len(next(iter(arrays.values()))):
            raise ValueError(
                f"{p}: {a.size} values, but {files[0].name} has {len(next(iter(arrays.values())))}"
            )
        arrays[name] = a
        names[name] = p.name
    return Inputs(arrays, names, os.path.abspath(directory), generated=False)


def generate(
    directory: str,
    *,
    clients: int,
    dim: int,
    kind: str,
    bits: int,
    clients_per_cohort: int,
    seed: int,
    clip: Optional[float] = None,
    dp_clip: Optional[float] = None,
) -> Inputs:
    """``clients`` deterministic vectors from ``seed``, written to ``directory`` (created).

    Sums: unsigned integers small enough that no cohort's sum wraps mod 2^bits, so the global
    sum equals numpy's plain sum over the survivors. Weighted means: floats inside
    [-clip, clip]. DP means: floats of L2 norm at most half of ``dp_clip`` (none is clipped).
    """
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(1, len(str(clients - 1)))
    arrays: dict[str, np.ndarray] = {}
    files: dict[str, str] = {}
    # Below 2^bits / clients_per_cohort: a cohort's sum stays below 2^bits.
    high = max(1, min(1 << 16, ((1 << bits) - 1) // max(1, clients_per_cohort)))
    for i in range(clients):
        name = f"client-{i:0{width}d}"
        if kind == "sum":
            a = rng.integers(0, high, size=dim, dtype=np.uint64)
        elif kind == "weighted_mean":
            a = rng.uniform(-1.0, 1.0, size=dim) * float(clip or 1.0)
        else:
            a = rng.uniform(-1.0, 1.0, size=dim) * (0.5 * float(dp_clip or 1.0) / math.sqrt(dim))
        file = f"{name}.npy"
        np.save(os.path.join(directory, file), a, allow_pickle=False)
        arrays[name] = a
        files[name] = file
    return Inputs(arrays, files, os.path.abspath(directory), generated=True)
