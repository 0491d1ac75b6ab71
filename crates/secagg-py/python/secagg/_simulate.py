"""``secagg.simulate`` and its result object."""

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _secagg

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`secagg.simulate` returns (see the attribute docs in ``__init__.pyi``)."""

    aggregate: Optional[np.ndarray]
    survivors: list
    dropped: list
    k: int
    t: int
    min_clients: int
    aborted: Optional[str]
    aggregate_ok: bool
    total_weight: Optional[int]
    mean_error: Optional[tuple]
    warnings: list
    dropouts: list
    stages: dict
    wall_s: float
    server_s: float
    clients_total_s: float
    bytes_up_per_client: int
    bytes_down_per_client: int
    parameters: dict
    dp: Optional[dict] = field(default=None)
    validation: Optional[dict] = field(default=None)

    def to_dict(self) -> "dict[str, Any]":
        """A JSON-serialisable dict (the keys of ``secagg simulate --json`` plus
        ``"aggregate"`` as a list)."""
        out: "dict[str, Any]" = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "aggregate":
                value = None if value is None else value.tolist()
            elif name == "mean_error":
                value = None if value is None else {"max_abs": value[0], "bound": value[1]}
            elif name == "stages":
                value = [dict(stage=k, **v) for k, v in value.items()]
            out[name] = value
        return out


def _weights(weights: Any) -> "Optional[list[int]]":
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.ndim != 1:
        raise ValueError(f"weights has shape {w.shape}: give one integer weight per input")
    if w.dtype.kind not in "ui":
        raise ValueError(
            f"weights has dtype {w.dtype}: weights are non-negative integers (e.g. example counts)"
        )
    if w.size and int(w.min()) < 0:
        raise ValueError(f"weights must be non-negative, got {int(w.min())}")
    return [int(x) for x in w]


def simulate(
    inputs: Sequence[np.ndarray],
    *,
    bits: int = 32,
    dropout: float = 0.0,
    dropout_stage: Optional[str] = None,
    degree: Optional[int] = None,
    threshold: Optional[int] = None,
    seed: Optional[int] = None,
    weights: Optional[Union[Sequence[int], np.ndarray]] = None,
    threat: str = "honest-but-curious",
    clip: Optional[float] = None,
    graph: str = "auto",
    prg: str = "aes",
    assumed_corrupt: float = 0.05,
    assumed_dropout: Optional[float] = None,
    accept_weaker_params: bool = False,
    dp: Optional[str] = None,
    dp_noise_multiplier: float = 1.0,
    dp_clip: float = 1.0,
    dp_delta: float = 1e-5,
    dp_sampling_rate: float = 1.0,
    dp_rounds: int = 1,
    dp_central: bool = False,
    validate_l2: Optional[float] = None,
    cheaters: Optional[Sequence[int]] = None,
    cheat: Optional[str] = None,
    validate_client_noise: bool = False,
) -> SimulationResult:
    """Run one secure-aggregation round over ``inputs`` in this process (see ``__init__.pyi``)."""
    if isinstance(inputs, np.ndarray):
        if inputs.ndim != 2:
            raise ValueError(
                f"inputs has shape {inputs.shape}: pass a list of 1-D arrays (one per client) "
                "or a 2-D array with one row per client"
            )
        inputs = list(inputs)
    elif not isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"inputs must be a list of 1-D numpy arrays (one per client), got {type(inputs).__name__}"
        )
    if not 1 <= int(bits) <= 64:
        raise ValueError(f"bits must be in 1..=64, got {bits}")
    if seed is not None and not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in 0..2**64, got {seed}")
    if cheaters is not None:
        if isinstance(cheaters, (str, bytes)) or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cheaters
        ):
            raise ValueError(
                f"cheaters must be a list of 0-based input indices (ints), got {cheaters!r}"
            )
        cheaters = [int(c) for c in cheaters]
    raw = _secagg.simulate_round(
        list(inputs),
        bits=int(bits),
        dropout=float(dropout),
        dropout_stage=dropout_stage,
        degree=degree,
        threshold=threshold,
        seed=seed,
        weights=_weights(weights),
        threat=threat,
        clip=None if clip is None else float(clip),
        graph=graph,
        prg=prg,
        assumed_corrupt=float(assumed_corrupt),
        assumed_dropout=None if assumed_dropout is None else float(assumed_dropout),
        accept_weaker_params=bool(accept_weaker_params),
        dp=dp,
        dp_noise_multiplier=float(dp_noise_multiplier),
        dp_clip=float(dp_clip),
        dp_delta=float(dp_delta),
        dp_sampling_rate=float(dp_sampling_rate),
        dp_rounds=int(dp_rounds),
        dp_central=bool(dp_central),
        validate_l2=None if validate_l2 is None else float(validate_l2),
        cheaters=cheaters,
        cheat=cheat,
        validate_client_noise=bool(validate_client_noise),
    )
    return SimulationResult(**raw)
