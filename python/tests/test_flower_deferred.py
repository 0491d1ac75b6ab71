"""SecAggStrategy rounds train at the masked-input request: a node keeps nothing of the model
between messages (its saved client stays small whatever the model's size), a node that drops
out before never trains, and the result is the plain FedAvg mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr", minversion="1.42", reason="Flower 1.42 is not installed")

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from secagg.flower import InProcessGrid, SecAggStrategy, run_server_app, secagg_mod  # noqa: E402
from secagg.flower import records as rk  # noqa: E402
from secagg.flower.encoding import array_view  # noqa: E402

N = 4


def _run(params: int, *, drop_at_shares: int | None = None) -> dict[str, Any]:
    trained: list[int] = []
    saved: list[int] = []
    app = ClientApp(mods=[_measure(saved), secagg_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        trained.append(p)
        w = msg.content["arrays"]["w"].numpy()
        new = w + np.float32(0.01 * (p + 1))
        metrics = MetricRecord({"num-examples": 10 * (p + 1)})
        return Message(
            RecordDict({"arrays": ArrayRecord({"w": Array(new)}), "metrics": metrics}),
            reply_to=msg,
        )

    result: dict[str, Any] = {}
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = SecAggStrategy(FedAvg(fraction_evaluate=0.0, min_available_nodes=N), seed=1)
        arrays = ArrayRecord({"w": Array(np.linspace(-1, 1, params, dtype=np.float32))})
        out = strategy.start(grid, arrays, num_rounds=1)
        result["w"] = out.arrays["w"].numpy()
        result["report"] = strategy.reports[0]

    counts: dict[int, int] = {}

    def vanish(partition: int, msg: Message) -> bool:
        counts[partition] = counts.get(partition, -1) + 1
        return partition == drop_at_shares and counts[partition] == 1

    grid = InProcessGrid(app, N, seed=2, vanish=vanish)
    run_server_app(server, grid)
    result.update(trained=trained, saved=saved, grid=grid)
    return result


def _measure(saved: list[int]) -> Any:
    """A mod in front of secagg_mod: the size of the client it saved after each message."""

    def mod(msg: Message, ctxt: Context, call_next: Any) -> Message:
        out = call_next(msg, ctxt)
        record = ctxt.state.config_records.get(rk.STATE_RECORD)
        if record is not None and rk.STATE_CLIENT in record:
            saved.append(len(record[rk.STATE_CLIENT]))
        return out

    return mod


@pytest.mark.parametrize("params", [10, 300_000])
def test_the_saved_client_holds_no_model_and_the_mean_is_fedavgs(params: int) -> None:
    r = _run(params)
    assert r["report"].aborted is None and len(r["report"].survivors) == N
    # Saved after the first, second and masked-input messages of every node: keys and
    # neighbours only, a few hundred bytes for any model size.
    assert len(r["saved"]) == 3 * N and max(r["saved"]) < 2000, r["saved"]
    w0 = np.linspace(-1, 1, params, dtype=np.float32)
    weights = np.array([10 * (p + 1) for p in range(N)], dtype=np.float64)
    deltas = np.array([np.float32(0.01 * (p + 1)) for p in range(N)], dtype=np.float64)
    want = w0 + float(np.dot(weights, deltas) / weights.sum())
    bound = r["report"].error_bound["w"]
    np.testing.assert_allclose(r["w"], want, rtol=0, atol=bound + 1e-6)


def test_a_node_that_drops_before_its_masked_input_never_trains() -> None:
    r = _run(50, drop_at_shares=2)
    report = r["report"]
    ids = {r["grid"].partition_id(n): n for n in r["grid"].get_node_ids()}
    assert ids[2] not in report.survivors and len(report.survivors) == N - 1
    assert sorted(r["trained"]) == [0, 1, 3]


def test_array_view_reads_an_arrays_bytes_without_copying() -> None:
    for a in (
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        np.array(3.5),
    ):
        arr = Array(a)
        view = array_view(arr)
        np.testing.assert_array_equal(view, a)
        assert view.dtype == a.dtype and view.shape == a.shape
        assert not view.flags.writeable and not view.flags.owndata
