"""secagg + distributed differential privacy on the same task, driven without Flower.

``secagg.flower`` does not carry DP parameters yet, so this mode runs the rounds itself with
``secagg.simulate(..., dp="ddg")``: every client's local update (new parameters minus the
global ones) goes through secagg's client DP pipeline (L2 clipping, randomized Hadamard
rotation, conditional stochastic rounding and its share of distributed discrete Gaussian
noise, sized so the survivors' total reaches the target), then through a real secure
aggregation round with the same dropouts rate and stage; the server only ever sees the noisy
sum. The global model moves by the released mean update (unweighted, as DP-FedAvg does: the
weights would change the sensitivity). ε is from secagg's accountant for all rounds so far.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import secagg

import app
import task


def available() -> str | None:
    """``None`` if the installed secagg can run this mode, else why not."""
    if "dp" not in inspect.signature(secagg.simulate).parameters:
        return "this secagg build has no simulate(dp=...)"
    return None


@dataclass(frozen=True)
class DpSetup:
    """Privacy parameters of the run."""

    epsilon: float = 10.0
    delta: float = 1e-5
    clip: float = 1.0
    mechanism: str = "ddg"


def plan_noise(setup: app.Setup, dp: DpSetup, min_survivors: int) -> dict[str, object]:
    """The smallest noise multiplier that keeps ``setup.rounds`` rounds within (ε, δ) when
    each client's noise share is sized for ``min_survivors``."""
    dim = task.num_params(setup.hidden)
    return secagg.dp.plan(
        dp.epsilon,
        dp.delta,
        setup.rounds,
        1.0,  # every client takes part in every round: no amplification by sampling
        clients=setup.num_clients,
        dim=dim,
        bits=32,
        clip=dp.clip,
        mechanism=dp.mechanism,
        min_survivors=min_survivors,
    )


def run(setup: app.Setup, plan: app.DropPlan, dp: DpSetup) -> dict[str, object]:
    """Train with secagg + DP; returns accuracy, loss and ε per round."""
    parts = app.partitions(setup)
    params = task.init_params(setup.hidden, seed=setup.seed)
    shapes = [p.shape for p in params]
    expected_survivors = setup.num_clients - round(plan.rate * setup.num_clients)
    threshold = max(2, expected_survivors - 2)
    planned = plan_noise(setup, dp, threshold)
    z = float(planned["noise_multiplier"])  # type: ignore[arg-type]
    loss, acc = task.evaluate(params, parts.x_test, parts.y_test)
    out: dict[str, list[float]] = {"accuracy": [acc], "loss": [loss], "epsilon": [0.0]}
    rounds = []
    for rnd in range(1, setup.rounds + 1):
        flat = np.concatenate([p.ravel() for p in params])
        updates = [
            np.concatenate([p.ravel() for p in app.local_training(setup, params, c, rnd)]) - flat
            for c in range(setup.num_clients)
        ]
        res = secagg.simulate(
            updates,
            dp=dp.mechanism,
            dp_noise_multiplier=z,
            dp_clip=dp.clip,
            dp_delta=dp.delta,
            dp_rounds=rnd,
            dropout=plan.rate,
            dropout_stage="masked-input",
            seed=setup.seed * 1000 + rnd,
            # Each client's noise share is sized for the round's min_clients (= t) survivors:
            # a complete graph with t just below the expected survivors keeps the total noise
            # near the target instead of several times it.
            degree=setup.num_clients - 1,
            threshold=threshold,
            accept_weaker_params=True,
        )
        report = res.dp or {}
        rounds.append(
            {
                "round": rnd,
                "survivors": len(res.survivors),
                "aborted": res.aborted,
                "epsilon": report.get("epsilon"),
                "rmse_vs_clipped": report.get("rmse_vs_clipped"),
                "expected_rmse": report.get("expected_rmse"),
            }
        )
        if res.aggregate is not None:
            new_flat = flat + np.asarray(res.aggregate, dtype=np.float64)[: flat.size]
            params, offset = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                params.append(new_flat[offset : offset + size].reshape(shape))
                offset += size
        loss, acc = task.evaluate(params, parts.x_test, parts.y_test)
        out["accuracy"].append(acc)
        out["loss"].append(loss)
        out["epsilon"].append(float(report.get("epsilon", out["epsilon"][-1])))
    return {
        **out,
        "noise_multiplier": z,
        "plan": planned,
        "dp": dp.__dict__,
        "rounds": rounds,
        "label": (
            f"secagg + DP (distributed discrete Gaussian, "
            f"ε = {out['epsilon'][-1]:.1f} at δ = {dp.delta:g})"
        ),
    }
