"""A split view of a Message-API round's encoding, driven by a malicious server as code.

The server runs a real ``SecAggStrategy(FedAvg)`` round over the Grid, but the Grid it hands
the strategy rewrites what one node (the target) receives: the round's encoding description
with a 16× finer scale for every float array and a 20× smaller ``max_weight`` (still a valid
encoding that cannot wrap), so that the target's update would stand out of the sum by 16×
and could be read from it. The description is bound to the round seed (its SHA-256), which
the session id covers:

- told at the first message or at the masked-input request, with the round's own RoundStart,
  the target refuses (the round seed is not the hash of its description) before its train
  handler runs, and the others' mean is released without it;
- told with a RoundStart of its own whose round seed is the other description's hash (a
  view consistent in itself), its neighbour graph and session id are not its neighbours':
  it refuses the keys the server relays, again before training.

Skipped without Flower.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from secagg.flower import InProcessGrid, SecAggStrategy, run_server_app, secagg_mod  # noqa: E402
from secagg.flower import records as rk  # noqa: E402
from secagg.flower.encoding import Encoding, round_seed  # noqa: E402

N = 6
TARGET = 2  # partition id of the node the server lies to
D = 20


def _update(partition: int) -> np.ndarray:
    return np.random.default_rng(partition).normal(0, 0.1, D).astype(np.float32)


def _client_app(trained: list[int]) -> ClientApp:
    app = ClientApp(mods=[secagg_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        trained.append(p)
        w = msg.content["arrays"]["w"].numpy()
        out = ArrayRecord({"w": Array(w + _update(p))})
        metrics = MetricRecord({"num-examples": 10 * (p + 1)})
        return Message(RecordDict({"arrays": out, "metrics": metrics}), reply_to=msg)

    return app


def _finer(enc: Encoding) -> Encoding:
    """The lie: every float array 16× finer, max_weight 20× smaller (no sum can wrap)."""
    segments = tuple(
        dataclasses.replace(s, log2_scale=s.log2_scale + 4) if s.kind == "float" else s
        for s in enc.segments
    )
    return dataclasses.replace(enc, max_weight=enc.max_weight // 20, segments=segments)


def _own_round_start(record: ConfigRecord, other: Encoding) -> bytes:
    """A RoundStart for the target like the round's, but whose round seed hashes ``other``."""
    messages = record[rk.MESSAGES]
    assert isinstance(messages, list) and isinstance(messages[0], bytes)
    config = secagg.round_config(messages[0])
    shadow = secagg.Server(
        clients=config["clients"],
        dim=config["dim"],
        bits=config["bits"],
        degree=config["k"],
        threshold=config["t"],
        graph=config["graph"],
        prg=config["prg"],
        round_id=config["round_id"],
        round_seed=round_seed(other),
        accept_weaker_params=True,
        stage_timeout_ms=2**62,
    )
    shadow.start(0)
    return dict(shadow.outgoing())[record[rk.CLIENT_ID]]


class _SplitViewGrid:
    """The Grid a malicious server hands its strategy: what it sends ``target`` carries
    another encoding description ``at`` the first message or the masked-input request;
    with ``own_seed`` the target's RoundStart is replaced too, so that its view is
    consistent in itself."""

    def __init__(self, grid: Grid, target: int, at: str, own_seed: bool = False) -> None:
        self._grid = grid
        self._target = target
        self._at = at
        self._own_seed = own_seed
        self.lied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        batch = list(messages)
        for msg in batch:
            record = msg.content.get(rk.RECORD)
            if msg.metadata.dst_node_id != self._target or not isinstance(record, ConfigRecord):
                continue
            if rk.ENCODING not in record:
                continue
            first = rk.CLIENT_ID in record
            if (self._at == "first") != first:
                continue
            description = record[rk.ENCODING]
            assert isinstance(description, bytes)
            other = _finer(Encoding.from_bytes(description))
            record[rk.ENCODING] = other.to_bytes()
            if self._own_seed:
                record[rk.MESSAGES] = [_own_round_start(record, other)]
            self.lied += 1
        return self._grid.send_and_receive(batch, timeout=timeout)


def _mean_without_target() -> np.ndarray:
    """The honest weighted mean of every update but the target's."""
    others = [p for p in range(N) if p != TARGET]
    total = sum(10 * (p + 1) for p in others)
    return sum(10 * (p + 1) * _update(p).astype(np.float64) for p in others) / total


def _run(at: str, own_seed: bool = False) -> tuple[SecAggStrategy, _SplitViewGrid, list[Any]]:
    trained: list[int] = []
    grid = InProcessGrid(_client_app(trained), N, seed=11)
    target = list(grid.get_node_ids())[TARGET]
    strategies: list[SecAggStrategy] = []
    lying: list[_SplitViewGrid] = []
    released: list[np.ndarray] = []
    app = ServerApp()

    @app.main()
    def main(server_grid: Grid, context: Context) -> None:
        del context
        strategy = SecAggStrategy(FedAvg(fraction_evaluate=0.0, min_available_nodes=N), seed=3)
        strategies.append(strategy)
        lying.append(_SplitViewGrid(server_grid, target, at, own_seed))

        def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord:
            del rnd
            released.append(arrays["w"].numpy().copy())
            return MetricRecord()

        initial = ArrayRecord({"w": Array(np.zeros(D, dtype=np.float32))})
        strategy.start(lying[0], initial, num_rounds=1, evaluate_fn=evaluate_fn)

    run_server_app(app, grid)
    return strategies[0], lying[0], [trained, released, target]


@pytest.mark.parametrize("at", ["first", "masked-input"])
def test_a_node_told_another_encoding_refuses_before_training(at: str) -> None:
    strategy, lying, (trained, released, target) = _run(at)
    assert lying.lied == 1
    report = strategy.reports[0]
    assert report.aborted is None, report.errors
    # The target refused before its handler ran; everyone else trained once.
    assert TARGET not in trained
    assert sorted(trained) == [p for p in range(N) if p != TARGET]
    assert target not in report.survivors
    stage = "advertise" if at == "first" else "masked-input"
    assert [(d["node_id"], d["stage"]) for d in report.dropouts] == [(target, stage)]
    assert any("round seed is not the hash" in e for e in report.errors), report.errors
    # What was released is the honest weighted mean of the others: nothing of the target.
    assert report.error_bound is not None
    np.testing.assert_allclose(
        released[1], _mean_without_target(), rtol=0, atol=report.error_bound["w"] + 1e-6
    )


def test_a_consistent_separate_view_is_refused_before_training() -> None:
    # The target's RoundStart hashes the other description too, so its own binding check
    # passes; but its round seed, and with it its neighbour graph and session id, is not its
    # neighbours': the keys the server relays do not fit, and it refuses at the key shares,
    # before its train handler runs.
    #
    # The target's graph comes from its own seed; when its neighbour set happens to equal the
    # real one (k = 2 of 5 here, so now and then), its keys fit, and it shares under its own
    # session id instead: its neighbours cannot decrypt those shares, name it, and refuse, so
    # the round aborts. Either way the target never trains and nothing of it is released.
    strategy, lying, (trained, released, target) = _run("first", own_seed=True)
    assert lying.lied == 1
    report = strategy.reports[0]
    assert TARGET not in trained
    if report.aborted is not None:
        errors = report.errors
        assert any("client 3 misbehaved: share ciphertext does not decrypt" in e for e in errors)
        assert not any("misbehaved" in e and "client 3 " not in e for e in errors), errors
        # Nothing was released: the model stays the initial one.
        assert all(not r.any() for r in released), released
        return
    assert [(d["node_id"], d["stage"]) for d in report.dropouts] == [(target, "share")]
    assert report.error_bound is not None
    np.testing.assert_allclose(
        released[1], _mean_without_target(), rtol=0, atol=report.error_bound["w"] + 1e-6
    )
