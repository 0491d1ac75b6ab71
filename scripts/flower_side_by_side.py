"""One round of Flower 1.42's SecAgg+ against `secagg simulate`, side by side on this machine.

    python scripts/flower_side_by_side.py --secagg target/release/secagg            # 100 × 10^6
    python scripts/flower_side_by_side.py --secagg target/release/secagg --dim 100000 --json

Both sides run one round with every client and the server in one process: Flower's
``SecAggPlusWorkflow`` + ``secaggplus_mod`` (FedAvg, ``num_shares`` / ``reconstruction_threshold``
as given, every message serialized through Flower's protobufs by the in-process grid of
``secagg.flower.in_process``), and ``secagg simulate`` with the same neighbour count
(``--degree num_shares - 1``, ``--threshold``). The two alternate, ``--repeat`` times each, each
run in a fresh process whose peak RSS is read with ``wait4``. A round's time is Flower's fit
workflow less the time its clients spend drawing their random update (``client_fn`` runs
inside the workflow; no training is timed) and simulate's ``wall_s`` (from the server's first
message to its result; input generation and the check against the plaintext sum are outside).
Both cover the whole protocol: key agreement, sharing, masking (Flower's includes quantizing
its float inputs, part of its client-side SecAgg+), unmasking and the aggregate. Both mask
in Z_2^32 (Flower's default ``modulus_range``, simulate's default ``--bits 32``). Flower's
in-process grid runs its clients one after the other on one core; simulate runs them on all
cores (rayon). Prints medians and the ratio of the medians.

Needs only ``flwr`` (and numpy) in the running interpreter: the in-process grid is loaded from
its file, so the ``secagg`` wheel need not be installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IN_PROCESS = ROOT / "crates/secagg-py/python/secagg/flower/in_process.py"


def _in_process():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("secagg_flower_in_process", IN_PROCESS)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {IN_PROCESS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def flower_round(clients: int, dim: int, num_shares: int, threshold: int) -> float:
    """Seconds of one SecAgg+ fit round of ``clients`` × ``dim`` float64 values."""
    import numpy as np
    from flwr.app import Context
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerConfig
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.serverapp import Grid, ServerApp

    grid_module = _in_process()
    logging.getLogger("flwr").setLevel(logging.ERROR)

    # Flower calls client_fn (so generates the update) inside the timed workflow: that time is
    # measured and taken off, as simulate's inputs are generated before its timer starts.
    input_seconds: list[float] = []

    class _Client(NumPyClient):
        def __init__(self, partition: int) -> None:
            start = time.perf_counter()
            rng = np.random.default_rng(partition)
            self.update = [rng.uniform(-1.0, 1.0, dim)]
            input_seconds.append(time.perf_counter() - start)

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            return self.update, 1, {}

    def client_fn(context: Context):  # type: ignore[no-untyped-def]
        return _Client(int(context.node_config["partition-id"])).to_client()

    seconds: list[float] = []
    workflow = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold)

    def timed(grid, context) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        workflow(grid, context)
        seconds.append(time.perf_counter() - start - sum(input_seconds))

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=clients,
            min_available_clients=clients,
            initial_parameters=ndarrays_to_parameters([np.zeros(dim)]),
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=1), strategy=strategy
        )
        DefaultWorkflow(fit_workflow=timed)(grid, legacy)

    client_app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
    grid = grid_module.InProcessGrid(client_app, clients, seed=1)
    grid_module.run_server_app(app, grid)
    if len(seconds) != 1:
        raise SystemExit("the SecAgg+ round did not run")
    return seconds[0]


def run_child(cmd: list[str]) -> tuple[str, float]:
    """Runs ``cmd``; returns its stdout and its peak RSS in MiB (from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return out, usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--secagg", type=Path, default=ROOT / "target/release/secagg")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--dim", type=int, default=1_000_000)
    parser.add_argument("--num-shares", type=int, default=21, help="Flower's; degree + 1")
    parser.add_argument("--threshold", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--flower-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.flower_once:
        seconds = flower_round(args.clients, args.dim, args.num_shares, args.threshold)
        print(json.dumps({"round_s": seconds}))
        return

    flower_cmd = [sys.executable, __file__, "--flower-once", "--clients", str(args.clients),
                  "--dim", str(args.dim), "--num-shares", str(args.num_shares),
                  "--threshold", str(args.threshold)]
    ours_cmd = [str(args.secagg), "simulate", "--clients", str(args.clients), "--dim",
                str(args.dim), "--degree", str(args.num_shares - 1), "--threshold",
                str(args.threshold), "--json"]
    runs: dict[str, list[tuple[float, float]]] = {"flower": [], "secagg": []}
    for i in range(args.repeat):
        out, rss = run_child(ours_cmd)
        runs["secagg"].append((json.loads(out)["wall_s"], rss))
        out, rss = run_child(flower_cmd)
        runs["flower"].append((json.loads(out)["round_s"], rss))
        if not args.json:
            (ours_s, ours_mb), (flower_s, flower_mb) = runs["secagg"][-1], runs["flower"][-1]
            print(f"run {i + 1}: secagg {ours_s:.3f} s, {ours_mb:.0f} MiB; "
                  f"Flower SecAgg+ {flower_s:.2f} s, {flower_mb:.0f} MiB", file=sys.stderr)
    med = {k: (statistics.median(t for t, _ in v), statistics.median(r for _, r in v))
           for k, v in runs.items()}
    result = {
        "clients": args.clients,
        "dim": args.dim,
        "num_shares": args.num_shares,
        "threshold": args.threshold,
        "repeat": args.repeat,
        "secagg_round_s": med["secagg"][0],
        "secagg_peak_rss_mib": med["secagg"][1],
        "flower_round_s": med["flower"][0],
        "flower_peak_rss_mib": med["flower"][1],
        "speedup": med["flower"][0] / med["secagg"][0],
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.clients} clients × {args.dim} values, k = {args.num_shares - 1}, "
              f"t = {args.threshold}, medians of {args.repeat}:")
        for name, key in (("secagg simulate", "secagg"), ("Flower SecAgg+ ", "flower")):
            print(f"  {name}  {result[key + '_round_s']:.3f} s   "
                  f"peak RSS {result[key + '_peak_rss_mib']:.0f} MiB")
        print(f"  speed-up {result['speedup']:.1f}×")


if __name__ == "__main__":
    main()
