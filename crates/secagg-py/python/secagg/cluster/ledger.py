"""The population's privacy ledger, held once by the driver of rounds run as cohorts.

Cohorts are disjoint: each client's update is in one cohort's sum only, so a global round
costs what its most expensive cohort costs (parallel composition), not the sum over cohorts.
Each cohort's noise is sized for its own minimum survivors, so each cohort's sum (which its
shard's server learns) is private on its own. The driver charges a global round here, at
sampling rate 1 (the operator sees who took part), **before any shard starts**: a cohort that
releases is a release even if the global round then fails, so a round is never run uncharged.
"""

from __future__ import annotations

import os
from typing import Any

from .. import _state_file
from ..dp import Accountant

_VERSION = 1


class PopulationLedger:
    """The ε a population has spent over global rounds, in a JSON file written durably.

    Args:
        path: the ledger file (created at the first charge).
        population: whose ledger it is (a file kept for another population is refused).
        delta: δ of the (ε, δ) guarantee (a file kept at another δ is refused).
        epsilon_budget: the population's total ε; a round past it is refused.

    Raises:
        ValueError: the file is not a consistent ledger of this population and δ.
    """

    def __init__(self, path: str, population: str, delta: float, epsilon_budget: float) -> None:
        self.path = path
        self.population = population
        self.delta = float(delta)
        self.epsilon_budget = float(epsilon_budget)
        self.spent = Accountant()
        self.rounds: list[str] = []
        record = _state_file.load(path, "the population's privacy ledger")
        if record is not None:
            self._read(record)

    def _read(self, r: "dict[str, Any]") -> None:
        where = f"the privacy ledger at {self.path!r}"
        if r.get("version") != _VERSION:
            raise ValueError(f"{where} is not a secagg population ledger (version {_VERSION})")
        if r.get("population") != self.population:
            raise ValueError(
                f"{where} belongs to population {r.get('population')!r}, not {self.population!r}"
            )
        if r.get("delta") != self.delta:
            raise ValueError(f"{where} is kept at δ = {r.get('delta')}, not {self.delta}")
        rounds = r.get("global_rounds")
        if not isinstance(rounds, list) or not all(isinstance(x, str) for x in rounds):
            raise ValueError(f"{where}: 'global_rounds' must be a list of ids")
        try:
            spent = Accountant([float(o) for o in r["orders"]], [float(x) for x in r["rdp"]])
            epsilon = spent.epsilon(self.delta)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where} is unreadable: {exc}") from exc
        if abs(epsilon - float(r.get("epsilon", -1))) > 1e-9 * max(1.0, epsilon):
            raise ValueError(
                f"{where} is inconsistent: its curve gives ε = {epsilon}, it records "
                f"{r.get('epsilon')}"
            )
        if bool(rounds) != (epsilon > 0):
            raise ValueError(f"{where} is inconsistent: {len(rounds)} rounds but ε = {epsilon}")
        self.spent, self.rounds = spent, rounds

    @property
    def epsilon(self) -> float:
        return float(self.spent.epsilon(self.delta))

    def charge(self, global_round_id: str, encodings: "list[Any]") -> "dict[str, Any]":
        """Charges one global round whose cohorts release with ``encodings`` (one
        :class:`secagg.DpEncoding` per distinct cohort plan): the pointwise maximum of their
        Rényi curves, at sampling rate 1. Written durably before it returns.

        Returns:
            ``{"epsilon_before", "epsilon_after", "epsilon_one_round", "rounds"}``.

        Raises:
            ValueError: the round id was charged before, or the budget would be exceeded
                (nothing is written then).
        """
        if global_round_id in self.rounds:
            raise ValueError(
                f"global round {global_round_id!r} was already charged to population "
                f"{self.population!r}"
            )
        one = [Accountant().composed(e, sampling_rate=1.0) for e in encodings]
        orders = list(self.spent.orders)
        if any(list(a.orders) != orders for a in one):
            raise ValueError(
                f"the privacy ledger at {self.path!r} uses other Rényi orders than this version"
            )
        cost = [max(a.rdp[k] for a in one) for k in range(len(orders))]
        after = Accountant(orders, [s + c for s, c in zip(self.spent.rdp, cost, strict=True)])
        before = self.epsilon
        eps_after = float(after.epsilon(self.delta))
        if eps_after > self.epsilon_budget:
            raise ValueError(
                f"privacy budget of population {self.population!r} exhausted: ε = {before:.4f} "
                f"spent over {len(self.rounds)} global rounds, this one would bring it to "
                f"{eps_after:.4f} > the budget {self.epsilon_budget} (δ = {self.delta}); no "
                "shard was started"
            )
        rounds = [*self.rounds, global_round_id]
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        _state_file.save(
            self.path,
            {
                "version": _VERSION,
                "population": self.population,
                "delta": self.delta,
                "orders": list(after.orders),
                "rdp": list(after.rdp),
                "global_rounds": rounds,
                "epsilon": eps_after,
            },
        )
        self.spent, self.rounds = after, rounds
        return {
            "epsilon_before": before,
            "epsilon_after": eps_after,
            "epsilon_one_round": max(float(a.epsilon(self.delta)) for a in one),
            "rounds": len(rounds),
        }
