"""Time per round: Flower's own SecAgg+ against secagg, inside the same Flower app.

    python examples/flower_digits/compare.py    # 20 and 100 clients, ~10^4 and ~10^5 params
    python examples/flower_digits/compare.py --clients 20 --hidden 128 --rounds 3

Both secure workflows run in the same ServerApp (FedAvg, same model, same data, same
InProcessGrid, every message serialized through Flower's protobufs), with the same
``num_shares`` / ``reconstruction_threshold``; plain FedAvg runs too, as the floor (training
plus Flower's message handling). A round's time is the fit workflow's time: training, every
client's protocol work, the server's, and the message handling, all in this process. Prints
the medians of its CPU time over ``--rounds`` rounds and writes them, with wall times, to
``compare.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import app  # noqa: E402  pylint: disable=wrong-import-position
import task  # noqa: E402  pylint: disable=wrong-import-position
from flwr.server.workflow.default_workflows import default_fit_workflow  # noqa: E402
from secagg.flower import InProcessGrid, run_server_app  # noqa: E402  pylint: disable=wrong-import-position


def _shares(n: int) -> tuple[int, int]:
    """Flower-style (num_shares, reconstruction_threshold): 21/11 as in Flower's docs, fewer
    for small federations."""
    return (21, 11) if n > 40 else (11, 6)


def measure(mode: str, n: int, hidden: int, rounds: int, dropout: float) -> dict[str, float]:
    """Median seconds per fit round, and upload bytes per client per round, for ``mode``."""
    num_shares, threshold = _shares(n)
    setup = app.Setup(
        num_clients=n, rounds=rounds, hidden=hidden, num_shares=num_shares, threshold=threshold
    )
    inner = app.fit_workflow(mode, setup) or default_fit_workflow
    times: list[float] = []
    cpu: list[float] = []

    def timed(grid, context) -> None:  # type: ignore[no-untyped-def]
        start, start_cpu = time.perf_counter(), time.process_time()
        inner(grid, context)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)

    app.partitions(setup)  # load the data outside the timed rounds
    plan = app.DropPlan(rate=dropout, seed=11)
    grid = InProcessGrid(
        app.make_client_app(setup, mode), n, seed=3, vanish=plan.vanish_fn(n, app.EXCHANGES[mode])
    )
    history = app.History()
    run_server_app(app.make_server_app(setup, mode, history, timed), grid)
    stats = grid.node_stats().values()
    return {
        "round_s": statistics.median(times),
        "rounds_s": times,
        "round_cpu_s": statistics.median(cpu),
        "rounds_cpu_s": cpu,
        "up_kb_per_client_round": sum(s.bytes_up for s in stats) / n / rounds / 1e3,
        "final_accuracy": history.accuracy[-1],
    }


def main() -> None:
    """Run the grid of (clients, model size) and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="20,100", help="comma-separated client counts")
    parser.add_argument(
        "--hidden", default="128,1500", help="hidden units: 128 = 9,610 params, 1500 = 112,510"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration (median)")
    parser.add_argument(
        "--dropout", type=float, default=0.0, help="fraction vanishing before upload"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.ERROR)

    rows = []
    print(
        f"Seconds per round (medians of {args.rounds}; CPU time of this process, which other jobs\n"
        "on a shared machine disturb less than wall time; wall time is in compare.json).\n"
        "'extra' = the round minus plain FedAvg's: what secure aggregation costs.\n"
        "SecAgg+ = Flower 1.42's SecAggPlusWorkflow + secaggplus_mod; secagg = this project's\n"
        "SecAggWorkflow + secagg_mod; speed-up = SecAgg+ / secagg. up KB: per client and round.\n"
    )
    header = (
        f"{'n':>4} {'params':>8} {'shares/t':>8} | {'FedAvg':>7} | "
        f"{'SecAgg+':>8} {'extra':>7} {'up KB':>6} | "
        f"{'secagg':>7} {'extra':>6} {'up KB':>6} | {'speed-up':>8} {'extra':>6}"
    )
    print(header)
    print("-" * len(header))
    for n in (int(c) for c in args.clients.split(",")):
        for hidden in (int(h) for h in args.hidden.split(",")):
            res: dict[str, dict[str, float]] = {}
            for mode in ("fedavg", "secaggplus", "secagg"):
                res[mode] = measure(mode, n, hidden, args.rounds, args.dropout)
            s, t = _shares(n)
            base = res["fedavg"]["round_cpu_s"]
            peer, ours = res["secaggplus"]["round_cpu_s"], res["secagg"]["round_cpu_s"]
            # Overheads below 1 ms are noise: clamp so the ratio stays meaningful.
            peer_extra, ours_extra = max(peer - base, 1e-3), max(ours - base, 1e-3)
            peer_kb = res["secaggplus"]["up_kb_per_client_round"]
            ours_kb = res["secagg"]["up_kb_per_client_round"]
            print(
                f"{n:>4} {task.num_params(hidden):>8} {f'{s}/{t}':>8} | {base:>7.3f} | "
                f"{peer:>8.3f} {peer_extra:>7.3f} {peer_kb:>6.0f} | "
                f"{ours:>7.3f} {ours_extra:>6.3f} {ours_kb:>6.0f} | "
                f"{peer / ours:>7.1f}x {peer_extra / ours_extra:>5.1f}x",
                flush=True,
            )
            rows.append(
                {
                    "clients": n,
                    "params": task.num_params(hidden),
                    "num_shares": s,
                    "threshold": t,
                    **res,
                }
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(
        json.dumps({"dropout": args.dropout, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
