"""Differential privacy for :class:`SecAggWorkflow`: its configuration and privacy ledger.

With ``SecAggWorkflow(..., dp=DpConfig(...))`` the DP parameters go into each round's
configuration (the session id covers them), and every client, before masking, clips its update
(new parameters minus the global ones) to L2 norm ``clipping_norm``, rotates it, quantizes it
and adds its share of discrete noise (secagg's DP pipeline in Rust); the server unmasks only
the noisy sum and releases the mean update. The ledger, kept in the ServerApp's
``context.state``, composes the Rényi DP of every round whose sum the server could compute:
a round is charged before its unmask requests go out, at sampling rate 1 (the server sees who
takes part, so sampling amplifies nothing against it). A round that would take ε past
``epsilon_budget`` is refused before any message is sent, or, when the ledger was charged
elsewhere while it ran, before its unmask requests. The ledger record is checked whenever it
is read (:func:`load_ledger`): a corrupt one raises, it never reads as empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from flwr.app import ConfigRecord, RecordDict

import secagg

from . import records as rk

__all__ = ["DpConfig"]

#: Why :class:`DpConfig` refuses a sampling rate other than 1.
SAMPLING_RATE_REFUSED = (
    "secagg's Flower workflow does not Poisson-sample nodes and the server sees who takes "
    "part: the ledger charges every round at rate 1, so DpConfig.sampling_rate must be 1.0. "
    "secagg.dp.epsilon(..., sampling_rate=q) gives the ε a Poisson-sampled deployment would "
    "have against observers of the released model only"
)


@dataclass(frozen=True, kw_only=True)
class DpConfig:  # pylint: disable=too-many-instance-attributes
    """Differentially private rounds for :class:`SecAggWorkflow` (distributed DP by default).

    Names follow Flower's ``DifferentialPrivacyServerSideFixedClipping``
    (``noise_multiplier``, ``clipping_norm``).

    Args:
        noise_multiplier: z > 0: the noise of the released sum has stddev z ×
            ``clipping_norm`` (with at least ``min_survivors`` survivors).
        clipping_norm: L2 norm each client clips its update to (the sensitivity).
        epsilon_budget: total ε the ledger may reach at ``delta`` (each round counted at
            sampling rate 1); a round that would exceed it is refused before it starts, or
            before its unmask requests when the ledger was charged elsewhere while it ran
            (``float("inf")``: account without a limit).
        delta: δ of the (ε, δ) guarantee.
        noise: ``"ddg"`` (distributed discrete Gaussian, Kairouz et al. 2021) or
            ``"skellam"`` (Agarwal et al. 2021).
        sampling_rate: must be 1.0 (the default); any other value is refused. The workflow
            does not Poisson-sample nodes (Flower's strategy chooses them) and the server sees
            who takes part, so amplification by sampling never holds against it: the ledger
            charges every round at rate 1. ``secagg.dp.epsilon(..., sampling_rate=q)`` gives
            the ε a Poisson-sampled deployment would have against observers of the released
            model only (its ``"epsilon_release_only"``). Earlier versions accepted q < 1 and
            charged the amplified ε.
        min_survivors: the fewest survivors a round accepts; each client's noise share is
            sized so that this many already reach the target noise, and the round aborts
            below it. ``None``: the Shamir threshold t (safe for any dropout pattern, but noisy
            when t is far below the survivors you expect). A round that samples fewer
            clients is skipped. Clients with ``make_secagg_mod(honest_clients=h)`` refuse
            rounds where z·√(min(h, m)/m) falls below their floor, m = ``min_survivors``.
        central: the server adds all the noise to the unmasked sum instead of the clients
            (trusted-server model: the server sees the un-noised sum).

    Raises:
        ValueError: a parameter out of range; the message says what to change.
    """

    noise_multiplier: float
    clipping_norm: float
    epsilon_budget: float
    delta: float = 1e-5
    noise: Literal["ddg", "skellam"] = "ddg"
    sampling_rate: float = 1.0
    min_survivors: int | None = None
    central: bool = False

    def __post_init__(self) -> None:
        if self.noise not in ("ddg", "skellam"):
            raise ValueError(
                f"noise must be 'ddg' (distributed discrete Gaussian) or 'skellam', got "
                f"{self.noise!r}"
            )
        for name in ("noise_multiplier", "clipping_norm"):
            value = getattr(self, name)
            if not _number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not _number(self.epsilon_budget) or not self.epsilon_budget > 0:
            raise ValueError(
                f"epsilon_budget must be > 0 (float('inf') to account without a limit), got "
                f"{self.epsilon_budget!r}"
            )
        if not _number(self.delta) or not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), e.g. 1e-5, got {self.delta!r}")
        if not _number(self.sampling_rate) or self.sampling_rate != 1:
            raise ValueError(SAMPLING_RATE_REFUSED + f" (got sampling_rate={self.sampling_rate!r})")
        if self.min_survivors is not None and (
            type(self.min_survivors) is not int or self.min_survivors < 2
        ):
            raise ValueError(
                f"min_survivors must be an int ≥ 2 or None (the threshold t), got "
                f"{self.min_survivors!r}"
            )
        if type(self.central) is not bool:
            raise ValueError(f"central must be True or False, got {self.central!r}")

    def server_kwargs(self) -> dict[str, object]:
        """The DP parameters as :class:`secagg.Server` takes them: they go into the round's
        configuration, which every client derives its encoding from and the session id
        covers."""
        return {
            "dp": self.noise,
            "dp_noise_multiplier": float(self.noise_multiplier),
            "dp_clip": float(self.clipping_norm),
            "dp_central": self.central,
            "min_clients": self.min_survivors,
        }


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_ledger(state: RecordDict) -> tuple[secagg.dp.Accountant, list[int]]:
    """The accountant and charged rounds kept in ``state`` (nothing spent if absent).

    The record must be whole and consistent: every key with its type, and ε recomputed from
    the stored RDP curve at the stored δ equal to the stored ε (relative 1e-9), positive once
    a round was charged and 0 before. So a curve zeroed, truncated or swapped for another
    population's is refused instead of resetting the budget.

    Raises:
        ValueError: the record is malformed or inconsistent (a corrupt ledger is never read
            as empty); restore the whole record as :func:`save_ledger` wrote it.
    """
    record = state.config_records.get(rk.LEDGER_RECORD)
    if record is None:
        return secagg.dp.Accountant(), []
    where = f"the privacy ledger '{rk.LEDGER_RECORD}' in context.state"
    keys = (rk.LEDGER_ORDERS, rk.LEDGER_RDP, rk.LEDGER_ROUNDS, rk.LEDGER_EPSILON, rk.LEDGER_DELTA)
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(
            f"{where} lacks {', '.join(repr(k) for k in missing)}: restore the whole record"
        )
    orders, rdp, rounds, stored_eps, delta = (record[k] for k in keys)
    for key, value in ((rk.LEDGER_ORDERS, orders), (rk.LEDGER_RDP, rdp)):
        if not isinstance(value, list) or not all(_number(v) for v in value):
            raise ValueError(f"{where}: '{key}' must be a list of floats, got {value!r}")
    if not isinstance(rounds, list) or not all(type(r) is int for r in rounds):
        raise ValueError(f"{where}: '{rk.LEDGER_ROUNDS}' must be a list of ints, got {rounds!r}")
    if not _number(stored_eps) or not math.isfinite(stored_eps) or stored_eps < 0:
        raise ValueError(
            f"{where}: '{rk.LEDGER_EPSILON}' must be a finite float ≥ 0, got {stored_eps!r}"
        )
    if not _number(delta) or not 0 < delta < 1:
        raise ValueError(f"{where}: '{rk.LEDGER_DELTA}' must be in (0, 1), got {delta!r}")
    try:
        spent = secagg.dp.Accountant([float(o) for o in orders], [float(r) for r in rdp])
        epsilon = spent.epsilon(float(delta))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is unreadable: {exc}") from exc
    if rounds and not epsilon > 0:
        raise ValueError(
            f"{where} lists {len(rounds)} charged rounds but its RDP curve spends nothing: it "
            "is corrupt (refusing to read it as an empty budget)"
        )
    if not rounds and epsilon != 0:
        raise ValueError(f"{where} lists no charged round but its RDP curve spends ε = {epsilon}")
    if not math.isclose(epsilon, stored_eps, rel_tol=1e-9, abs_tol=0.0):
        raise ValueError(
            f"{where} is inconsistent: its RDP curve gives ε = {epsilon} at δ = {delta}, but it "
            f"records ε = {stored_eps}"
        )
    return spent, list(rounds)


def save_ledger(
    state: RecordDict,
    spent: secagg.dp.Accountant,
    rounds: list[int],
    epsilon: float,
    delta: float,
) -> None:
    """Write the ledger after a charged round into ``state``."""
    state.config_records[rk.LEDGER_RECORD] = ConfigRecord(
        {
            rk.LEDGER_ORDERS: spent.orders,
            rk.LEDGER_RDP: spent.rdp,
            rk.LEDGER_ROUNDS: rounds,
            rk.LEDGER_EPSILON: epsilon,
            rk.LEDGER_DELTA: delta,
        }
    )
