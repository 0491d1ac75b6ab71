"""The ``secagg-dp`` mode's privacy parameters: a noise multiplier planned for the budget.

The mode runs through Flower like ``secagg`` (``app.fit_workflow("secagg-dp", ..., dp=...)``):
every client's local update (new parameters minus the global ones) goes through secagg's
client DP pipeline inside ``secagg_mod`` (L2 clipping, randomized Hadamard rotation,
conditional stochastic rounding and its share of distributed discrete Gaussian noise, sized
so that ``min_survivors`` survivors already reach the target) before it is masked; the server
only ever unmasks the noisy sum, and the global model moves by the released mean update
(unweighted, as DP-FedAvg does: weights would change the sensitivity). ``SecAggWorkflow``
charges each released round to its privacy ledger and would refuse a round past the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import secagg
from secagg.flower import DpConfig

import app
import task


@dataclass(frozen=True)
class DpSetup:
    """Privacy parameters of the run."""

    epsilon: float = 10.0
    delta: float = 1e-5
    clip: float = 1.0
    mechanism: str = "ddg"


def min_survivors(setup: app.Setup, dropout: float) -> int:
    """The fewest survivors a round accepts: two below the expected number, so a round with a
    couple more dropouts still releases, while each client's noise share stays small."""
    expected = setup.num_clients - round(dropout * setup.num_clients)
    return max(setup.threshold, expected - 2)


def dp_config(setup: app.Setup, dp: DpSetup, survivors: int) -> tuple[DpConfig, dict[str, Any]]:
    """The smallest noise multiplier that keeps ``setup.rounds`` rounds within (ε, δ) when each
    client's noise share is sized for ``survivors``, as a ``DpConfig``, and the plan."""
    planned = secagg.dp.plan(
        dp.epsilon,
        dp.delta,
        setup.rounds,
        1.0,  # every client takes part in every round: no amplification by sampling
        clients=setup.num_clients,
        dim=task.num_params(setup.hidden),
        bits=32,
        clip=dp.clip,
        mechanism=dp.mechanism,
        min_survivors=survivors,
    )
    config = DpConfig(
        noise=dp.mechanism,  # type: ignore[arg-type]
        noise_multiplier=float(planned["noise_multiplier"]),
        clipping_norm=dp.clip,
        epsilon_budget=dp.epsilon,
        delta=dp.delta,
        min_survivors=survivors,
    )
    return config, planned
