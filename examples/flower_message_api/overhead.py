"""Per-round cost of SecAggStrategy over plain Flower on the Message API, side by side.

    python examples/flower_message_api/overhead.py                    # n = 100, 10^5 values
    python examples/flower_message_api/overhead.py --clients 20 --params 10000 --repeats 3

Both runs use the same ServerApp (``FedAvg`` on the Message API, ``strategy.start``), the same
ClientApp handler (it adds a fixed update: no training, so the figures are the aggregation's
cost) and the same :class:`secagg.flower.InProcessGrid`, which serializes every message and
every node's context through Flower's protobufs, as a SuperLink and a SuperNode with a fresh
ClientApp process per message would. One process runs the server and every client, so the
wall time per round is the sum of all of their work. Runs alternate (plain, secure, plain,
...) and the medians of ``--repeats`` runs are reported with their ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from secagg.flower import InProcessGrid, SecAggStrategy, run_server_app, secagg_mod


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
        start = time.perf_counter()
        strategy.start(grid, arrays, num_rounds=rounds)
        seconds.append((time.perf_counter() - start) / rounds)
        if secure and kt is not None:
            kt.extend((r.k, r.t) for r in strategy.reports)

    grid = InProcessGrid(client_app(secure), clients, seed=0)
    run_server_app(app, grid)
    return seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-shares", type=int, default=None, help="default: threat model")
    parser.add_argument("--threshold", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    plain, secure = [], []
    kt: list[tuple[int, int]] = []
    setup = (args.clients, args.params, args.rounds, args.num_shares, args.threshold)
    one_run(False, *setup)  # warm-up (imports, first allocations), not counted
    one_run(True, *setup)
    for _ in range(args.repeats):
        plain.append(one_run(False, *setup))
        secure.append(one_run(True, *setup, kt=kt))
    result = {
        "clients": args.clients,
        "params": args.params,
        "k_t": sorted(set(kt)),
        "plain_s": plain,
        "secagg_s": secure,
        "plain_median_s": statistics.median(plain),
        "secagg_median_s": statistics.median(secure),
        "ratio": statistics.median(secure) / statistics.median(plain),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"n = {args.clients}, {args.params} values, medians of {args.repeats}: plain FedAvg "
            f"{result['plain_median_s']:.2f} s/round, SecAggStrategy(FedAvg) "
            f"{result['secagg_median_s']:.2f} s/round (k, t = {result['k_t']}), ratio "
            f"{result['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
