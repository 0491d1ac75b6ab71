"""One round with a large model (10^8 values by default, n = 10): memory, time and bytes.

    python examples/flower_message_api/large.py                       # 10^8 values, n = 10
    python examples/flower_message_api/large.py --params 10000000 --modes plain,secagg

Runs one FedAvg round on the Message API, plain and with ``SecAggStrategy``, in one process
(:class:`secagg.flower.InProcessGrid`: every message and every node's context serialized
through Flower's protobufs). Linux only: peaks are read from ``/proc/self/status`` (VmHWM),
reset through ``/proc/self/clear_refs`` around each piece of work, so that they measure

- per client: the largest rise of the process's resident memory while one client handles one
  message (Flower's deserialization of the message happens before, in the grid, and is not in
  it; the handler's own copy of the model is);
- the whole process (server and all clients): its peak over the round. The grid keeps every
  node's serialized context between messages, as each SuperNode would keep its own (a secure
  node's saved client holds no vector: it trains and masks at the masked-input request).

Time per client is the grid's per-node handling time summed over the round's messages; upload
bytes are the serialized replies. The model is one float32 array; the handler adds a small
update, so the figures are the aggregation's cost, not training's.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from secagg.flower import InProcessGrid, SecAggStrategy, run_server_app, secagg_mod
from secagg.flower import mod as mod_module

_STATUS = Path("/proc/self/status")


def rss_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """A mod in front of everything: the rise of the resident set while a client works. It
    also empties ``secagg_mod``'s in-memory cache of Rust clients before every message, as a
    SuperNode that starts a fresh ClientApp process per message would (the client is restored
    from ``context.state``): in one process, the cache would keep every node's client alive
    at once."""

    def __init__(self) -> None:
        self.rise_kib: list[int] = []

    def __call__(self, msg: Message, ctxt: Context, call_next: Any) -> Message:
        mod_module._CLIENTS.clear()  # pylint: disable=protected-access
        before = rss_kib("VmRSS")
        reset_peak()
        try:
            return call_next(msg, ctxt)
        finally:
            self.rise_kib.append(rss_kib("VmHWM") - before)


def client_app(secure: bool, meter: Meter) -> ClientApp:
    app = ClientApp(mods=[meter, secagg_mod] if secure else [meter])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        w = msg.content["arrays"]["w"].numpy()
        new = w + np.float32(0.001 * (p % 7 - 3))
        metrics = MetricRecord({"num-examples": 10})
        out = RecordDict({"arrays": ArrayRecord({"w": Array(new)}), "metrics": metrics})
        return Message(out, reply_to=msg)

    return app


def one_round(secure: bool, clients: int, params: int) -> dict[str, Any]:
    meter = Meter()
    seconds: list[float] = []
    reports: list[Any] = []
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        inner = FedAvg(fraction_evaluate=0.0, min_available_nodes=clients)
        strategy: Any = SecAggStrategy(inner) if secure else inner
        arrays = ArrayRecord({"w": Array(np.zeros(params, dtype=np.float32))})
        start = time.perf_counter()
        strategy.start(grid, arrays, num_rounds=1)
        seconds.append(time.perf_counter() - start)
        reports.extend(getattr(strategy, "reports", []))

    grid = InProcessGrid(client_app(secure, meter), clients, seed=0)
    base = rss_kib("VmRSS")
    reset_peak()
    run_server_app(app, grid)
    process_peak = rss_kib("VmHWM")
    stats = grid.node_stats().values()
    mib = 1024
    out: dict[str, Any] = {
        "mode": "secagg" if secure else "plain",
        "clients": clients,
        "params": params,
        "model_mib": params * 4 / 2**20,
        "round_s": seconds[0],
        "client_s_mean": float(np.mean([s.seconds for s in stats])),
        "upload_mib_per_client": float(np.mean([s.bytes_up for s in stats])) / 2**20,
        "download_mib_per_client": float(np.mean([s.bytes_down for s in stats])) / 2**20,
        "client_peak_rise_mib": max(meter.rise_kib) / mib,
        "process_peak_mib": process_peak / mib,
        "process_rise_mib": (process_peak - base) / mib,
    }
    if reports:
        out["k_t"] = [reports[0].k, reports[0].t]
        out["aborted"] = reports[0].aborted
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--params", type=int, default=100_000_000)
    parser.add_argument("--modes", default="plain,secagg")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    for mode in args.modes.split(","):
        print(json.dumps(one_round(mode == "secagg", args.clients, args.params)), flush=True)


if __name__ == "__main__":
    main()
