"""secagg.flower with validated inputs: ``SecAggWorkflow(..., validate_l2=B)`` over Flower 1.42's
messages, in process. Every client proves its (L2-clipped) parameter vector is within B; a
node that uploads something else than it proved is named in the round's report and left out
of the mean, which is FedAvg over the others.

Skipped (with the reason printed) when Flower is not installed.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

flwr = pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import ConfigRecord, Context, Message  # noqa: E402
from flwr.client import NumPyClient  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flower_apps import fedavg_server_app, numpy_client_app  # noqa: E402
from secagg.flower import (  # noqa: E402
    DpConfig,
    InProcessGrid,
    SecAggWorkflow,
    make_secagg_mod,
    run_server_app,
)
from secagg.flower import records as rk  # noqa: E402

N = 6
SHAPES = [(3, 4), (5,)]
BOUND = 20.0  # above every update's norm: honest updates are not shrunk
CHEATER = 2  # partition id


def _offset(partition: int) -> list[np.ndarray]:
    rng = np.random.default_rng(300 + partition)
    return [rng.normal(0.0, 1.0, s) for s in SHAPES]


def _weight(partition: int) -> int:
    return 10 + 7 * partition


class _Client(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        update = [0.5 * p + o for p, o in zip(parameters, _offset(self.partition), strict=True)]
        return update, _weight(self.partition), {}


def _tamper_upload(partition: int):  # type: ignore[no-untyped-def]
    """A mod in front of secagg_mod: node ``partition`` flips one bit of its masked vector
    after proving it (the third exchange of each round is the masked-input request)."""
    seen: dict[str, int] = {}

    def mod(msg: Message, ctxt: Context, call_next):  # type: ignore[no-untyped-def]
        out = call_next(msg, ctxt)
        if int(ctxt.node_config["partition-id"]) != partition or out.has_error():
            return out
        group = msg.metadata.group_id
        index = seen.get(group, 0)
        seen[group] = index + 1
        if index == 2:
            record = out.content.config_records[rk.RECORD]
            replies = [bytearray(r) for r in record[rk.REPLIES]]
            replies[0][24] ^= 0x01
            out.content.config_records[rk.RECORD] = ConfigRecord(
                {rk.REPLIES: [bytes(r) for r in replies]}
            )
        return out

    return mod


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def _keys(grid: InProcessGrid) -> dict[int, tuple[bytes, bytes]]:
    return {nid: secagg.keygen(nid.to_bytes(8, "little") * 4) for nid in grid.get_node_ids()}


def _run(mods_before: list, rounds: int = 1):  # type: ignore[no-untyped-def]
    probe = InProcessGrid(ClientApp(client_fn=lambda c: None), N, seed=11)  # type: ignore[arg-type,return-value]
    keys = _keys(probe)
    directory = {nid: pub for nid, (_, pub) in keys.items()}
    mod = make_secagg_mod(
        identity=lambda ctx: keys[ctx.node_id][0], directory=directory, assumed_dropout=0.2
    )
    grid = InProcessGrid(numpy_client_app(_Client, [*mods_before, mod]), N, seed=11)
    workflow = SecAggWorkflow(
        max_weight=100,
        threat="malicious",
        directory=directory,
        assumed_dropout=0.2,
        seed=7,
        validate_l2=BOUND,
    )
    seen: list[list[np.ndarray]] = []
    app = fedavg_server_app(
        workflow,
        lambda params: seen.append([p.copy() for p in params]),
        rounds=rounds,
        shapes=SHAPES,
        clients=N,
    )
    run_server_app(app, grid)
    return workflow, grid, seen


def _fedavg(alive: list[int]) -> list[np.ndarray]:
    """One FedAvg round from zero parameters over partitions ``alive``, in numpy."""
    total = sum(_weight(p) for p in alive)
    return [
        sum(_weight(p) * _offset(p)[i] for p in alive) / total for i in range(len(SHAPES))
    ]


def test_a_validated_round_names_the_cheater_and_averages_the_others() -> None:
    workflow, grid, seen = _run([_tamper_upload(CHEATER)])
    node_of = {grid.partition_id(nid): nid for nid in grid.get_node_ids()}
    (report,) = workflow.reports
    assert report.aborted is None, report.aborted
    assert report.rejected == [
        {"node_id": node_of[CHEATER], "stage": "masked-input", "reason": "validation: norm"}
    ]
    assert node_of[CHEATER] not in report.survivors and len(report.survivors) == N - 1
    assert report.rejected[0] in report.dropouts
    # The released model is FedAvg over the honest nodes (up to the fixed-point rounding).
    alive = [p for p in range(N) if p != CHEATER]
    for got, want in zip(seen[-1], _fedavg(alive), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert report.exchanges == 6


def test_an_honest_validated_round_equals_fedavg() -> None:
    workflow, _, seen = _run([])
    (report,) = workflow.reports
    assert report.aborted is None and report.rejected == [] and len(report.survivors) == N
    # The binding challenge: one exchange more than a plain malicious-model round's five.
    assert report.exchanges == 6
    for got, want in zip(seen[-1], _fedavg(list(range(N))), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(validate_l2=BOUND), "needs threat='malicious'"),
        (dict(validate_l2=-1.0, threat="malicious", directory={1: b"k" * 32}), "positive"),
        (dict(validate_l2="big", threat="malicious", directory={1: b"k" * 32}), "a number"),
        (
            dict(
                validate_l2=BOUND,
                threat="malicious",
                directory={1: b"k" * 32},
                dp=DpConfig(noise_multiplier=1.0, clipping_norm=1.0, epsilon_budget=10.0),
            ),
            "refused for now",
        ),
    ],
)
def test_the_workflow_refuses_bad_validated_settings(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        SecAggWorkflow(**kwargs)
