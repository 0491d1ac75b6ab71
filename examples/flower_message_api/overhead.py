"""Per-round cost of SecAggStrategy over plain Flower on the Message API, side by side.

    python examples/flower_message_api/overhead.py                    # n = 100, 10^5 values
    python examples/flower_message_api/overhead.py --clients 20 --params 10000 --repeats 3

Both runs use the same ServerApp (``FedAvg`` on the Message API, ``strategy.start``), the same
ClientApp handler (it adds a fixed update: no training, so the figures are the aggregation's
cost) and the same :class:`secagg.flower.InProcessGrid`, which serializes every message and
every node's context through Flower's protobufs, as a SuperLink and a SuperNode with a fresh
ClientApp process per message would. One process runs the server and every client, so the
wall time per round is the sum of all of their work. Runs alternate (plain, secure, plain,
...) and the medians of ``--repeats`` runs are reported with their ratio, beside the time of
an empty exchange with the same nodes on the same kind of Grid (Flower's own messaging, which
every exchange of the protocol pays at least) and the load average. ``--profile PATH`` runs
one secure round under cProfile instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from collections import defaultdict
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from secagg.flower import InProcessGrid, SecAggStrategy, run_server_app, secagg_mod


#: What a round is timed with: wall time (``--clock wall``, the default) or the process's CPU
#: time (``--clock cpu``: steadier on a machine shared with other work).
clock = time.perf_counter


def client_app(secure: bool) -> ClientApp:
    app = ClientApp(mods=[secagg_mod] if secure else [])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        w = msg.content["arrays"]["w"].numpy()
        new = w + np.float32(0.001 * (p % 7 - 3))
        out = RecordDict(
            {
                "arrays": ArrayRecord({"w": Array(new)}),
                "metrics": MetricRecord({"num-examples": 10 + p % 5}),
            }
        )
        return Message(out, reply_to=msg)

    return app


def one_run(  # pylint: disable=too-many-arguments
    secure: bool, clients: int, params: int, rounds: int, shares: int | None, threshold: int | None,
    kt: list[tuple[int, int]] | None = None,
) -> float:
    """Seconds per round (the mean over ``rounds``); ``kt`` gets the secure rounds' (k, t)."""
    seconds: list[float] = []
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        inner = FedAvg(fraction_evaluate=0.0, min_available_nodes=clients)
        strategy: Any = SecAggStrategy(inner, shares, threshold) if secure else inner
        arrays = ArrayRecord({"w": Array(np.zeros(params, dtype=np.float32))})
        start = clock()
        strategy.start(grid, arrays, num_rounds=rounds)
        seconds.append((clock() - start) / rounds)
        if secure and kt is not None:
            kt.extend((r.k, r.t) for r in strategy.reports)

    grid = InProcessGrid(client_app(secure), clients, seed=0)
    run_server_app(app, grid)
    return seconds[0]


def empty_exchange(clients: int) -> float:
    """Seconds of one exchange that carries nothing: ``clients`` train messages with empty
    content to a handler that answers an empty reply, over the same :class:`InProcessGrid`
    (Flower's own messaging per exchange: a message and a context through protobuf both ways)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        del context
        return Message(RecordDict(), reply_to=msg)

    grid = InProcessGrid(app, clients, seed=0)
    seconds: list[float] = []

    def main(grid: Grid, context: Context) -> None:
        del context
        nodes = list(grid.get_node_ids())
        start = clock()
        replies = grid.send_and_receive(
            [Message(RecordDict(), dst_node_id=n, message_type="train") for n in nodes]
        )
        seconds.append(clock() - start)
        assert len(list(replies)) == len(nodes)

    run_server_app(main, grid)
    return seconds[0]


def rust_round(clients: int, values: int) -> dict[str, float]:
    """Seconds our Rust objects take in one round like the secure round above (same n, the
    threat model's k and t, ``values`` encoded values, inputs given at the masked-input
    request), with no Flower and no encoding: per stage, the clients' ``handle`` calls
    (each client saved and restored between messages, as the mod does) and the server's."""
    import secagg  # pylint: disable=import-outside-toplevel

    server = secagg.Server(clients=clients, dim=values, stage_timeout_ms=2**62)
    fresh = {c: secagg.Client(c, dim=values) for c in range(1, clients + 1)}
    saved: dict[int, bytes] = {}
    rng = np.random.default_rng(0)
    inputs = {c: rng.integers(0, 2**20, values, dtype=np.uint64) for c in fresh}
    spent: dict[str, float] = defaultdict(float)
    server.start(0)
    while not server.finished:
        stage = server.stage
        out = server.outgoing()
        for cid, payload in out:
            start = clock()
            client = fresh.pop(cid, None) or secagg.Client.from_state(saved[cid])
            if client.stage == "masked-input":
                reply = client.handle(payload, input=inputs[cid])
            else:
                reply = client.handle(payload)
            if not client.finished:
                saved[cid] = client.export_state()
            spent[f"clients {stage}"] += clock() - start
            if reply is not None:
                start = clock()
                server.handle_message(0, cid, reply)
                spent["server"] += clock() - start
        if not out and not server.finished:
            server.handle_timeout(2**62)
    start = clock()
    server.result()
    spent["server"] += clock() - start
    return dict(spent)


def encoding_cost(clients: int, params: int) -> float:
    """Seconds the clients' fixed-point encoding of a round takes (every client's update
    checked, counted and encoded piece by piece, as the mod hands it to Rust), and the
    server's decoding of the sum."""
    from secagg.flower.encoding import Encoding  # pylint: disable=import-outside-toplevel

    announced = ArrayRecord({"w": Array(np.zeros(params, dtype=np.float32))})
    replies = [
        (
            ArrayRecord({"w": Array(np.full(params, 0.001 * (p % 7 - 3), dtype=np.float32))}),
            MetricRecord({"num-examples": 10 + p % 5}),
        )
        for p in range(clients)
    ]
    start = clock()
    enc = Encoding.build(
        message_type="train", arrays_key="arrays", arrays=announced, metrics={},
        weight_key="num-examples", max_weight=1000, clients=clients, bits=32,
        update_bound=None, min_update_bound=1.0, int_bound=4096,
    )
    for returned, metrics in replies:
        chunks, _, _ = enc.encode_chunks(announced, returned, metrics)
        for _ in chunks:
            pass
    total = np.zeros(enc.dim, dtype=np.uint32)
    total[0] = clients  # a total weight to divide by
    enc.decode(total, announced)
    return clock() - start


def breakdown(clients: int, params: int, repeats: int) -> dict[str, Any]:
    """Where a secure round's time goes, each part timed alone, medians of ``repeats``
    (runs alternate): the round itself, plain Flower's, an empty exchange, our Rust objects
    alone and our encoding alone."""
    parts: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        kt: list[tuple[int, int]] = []
        parts["plain round"].append(one_run(False, clients, params, 1, None, None))
        parts["secure round"].append(one_run(True, clients, params, 1, None, None, kt=kt))
        parts["empty exchange"].append(empty_exchange(clients))
        for name, seconds in rust_round(clients, params + 3).items():
            parts[f"rust {name}"].append(seconds)
        parts["encoding"].append(encoding_cost(clients, params))
    return {name: statistics.median(v) for name, v in parts.items()}


def profile(clients: int, params: int, path: str) -> None:
    """One secure round under cProfile, written to ``path`` (read it with ``pstats``)."""
    import cProfile  # pylint: disable=import-outside-toplevel

    profiler = cProfile.Profile()
    profiler.enable()
    one_run(True, clients, params, 1, None, None)
    profiler.disable()
    profiler.dump_stats(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-shares", type=int, default=None, help="default: threat model")
    parser.add_argument("--threshold", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", metavar="PATH", help="profile one secure round to PATH")
    parser.add_argument("--breakdown", action="store_true", help="time the parts of a round")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    global clock  # pylint: disable=global-statement
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    logging.getLogger("flwr").setLevel(logging.WARNING)
    if args.profile:
        profile(args.clients, args.params, args.profile)
        return
    if args.breakdown:
        one_run(True, args.clients, args.params, 1, None, None)  # warm-up
        parts = breakdown(args.clients, args.params, args.repeats)
        parts["load_average"] = list(os.getloadavg())
        parts["clock"] = args.clock
        print(json.dumps(parts, indent=1))
        return
    plain, secure, empty = [], [], []
    kt: list[tuple[int, int]] = []
    setup = (args.clients, args.params, args.rounds, args.num_shares, args.threshold)
    one_run(False, *setup)  # warm-up (imports, first allocations), not counted
    one_run(True, *setup)
    empty_exchange(args.clients)
    for _ in range(args.repeats):
        plain.append(one_run(False, *setup))
        secure.append(one_run(True, *setup, kt=kt))
        empty.append(empty_exchange(args.clients))
    result = {
        "clients": args.clients,
        "params": args.params,
        "k_t": sorted(set(kt)),
        "plain_s": plain,
        "secagg_s": secure,
        "plain_median_s": statistics.median(plain),
        "secagg_median_s": statistics.median(secure),
        "ratio": statistics.median(secure) / statistics.median(plain),
        "empty_exchange_s": empty,
        "empty_exchange_median_s": statistics.median(empty),
        "load_average": list(os.getloadavg()),
        "clock": args.clock,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"n = {args.clients}, {args.params} values, medians of {args.repeats}: plain FedAvg "
            f"{result['plain_median_s']:.2f} s/round, SecAggStrategy(FedAvg) "
            f"{result['secagg_median_s']:.2f} s/round (k, t = {result['k_t']}), ratio "
            f"{result['ratio']:.2f}; an empty exchange of {args.clients} nodes "
            f"{result['empty_exchange_median_s']:.3f} s; load average "
            + " ".join(f"{x:.2f}" for x in result["load_average"])
        )


if __name__ == "__main__":
    main()
