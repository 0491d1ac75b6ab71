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
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# One BLAS thread: the round is measured in process CPU time, which spinning BLAS threads
# would inflate; the same for every mode.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from flwr.server.workflow.default_workflows import default_fit_workflow  # noqa: E402
from secagg.flower import InProcessGrid, run_server_app  # noqa: E402  pylint: disable=wrong-import-position

import app  # noqa: E402  pylint: disable=wrong-import-position
import task  # noqa: E402  pylint: disable=wrong-import-position


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
    train: list[float] = []

    def timed(grid, context) -> None:  # type: ignore[no-untyped-def]
        start, start_cpu = time.perf_counter(), time.process_time()
        start_train = app.TRAIN_CPU_SECONDS[0]
        inner(grid, context)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        train.append(app.TRAIN_CPU_SECONDS[0] - start_train)

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
        # Everything but local training: the protocol, Flower's message handling, FedAvg.
        "round_cpu_without_training_s": statistics.median(
            c - t for c, t in zip(cpu, train, strict=True)
        ),
        "rounds_train_cpu_s": train,
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
        f"CPU seconds per round, medians of {args.rounds} (CPU time of this process, which other\n"
        "jobs on a shared machine disturb less than wall time; wall times are in compare.json).\n"
        "'w/o train' = the round minus the clients' local training: the secure-aggregation\n"
        "protocol plus Flower's message handling and FedAvg. SecAgg+ = Flower 1.42's\n"
        "SecAggPlusWorkflow + secaggplus_mod; secagg = this project's SecAggWorkflow +\n"
        "secagg_mod; speed-up = SecAgg+ / secagg. up KB: sent per client and round.\n"
    )
    header = (
        f"{'n':>4} {'params':>7} {'shares/t':>8} | {'FedAvg':>6} {'w/o train':>9} | "
        f"{'SecAgg+':>7} {'w/o train':>9} {'up KB':>5} | "
        f"{'secagg':>6} {'w/o train':>9} {'up KB':>5} | {'speed-up':>8} {'w/o train':>9}"
    )
    print(header)
    print("-" * len(header))
    for n in (int(c) for c in args.clients.split(",")):
        for hidden in (int(h) for h in args.hidden.split(",")):
            res: dict[str, dict[str, float]] = {}
            for mode in ("fedavg", "secaggplus", "secagg"):
                res[mode] = measure(mode, n, hidden, args.rounds, args.dropout)
            s, t = _shares(n)
            row = [res[m]["round_cpu_s"] for m in ("fedavg", "secaggplus", "secagg")]
            bare = [
                res[m]["round_cpu_without_training_s"] for m in ("fedavg", "secaggplus", "secagg")
            ]
            peer_kb = res["secaggplus"]["up_kb_per_client_round"]
            ours_kb = res["secagg"]["up_kb_per_client_round"]
            print(
                f"{n:>4} {task.num_params(hidden):>7} {f'{s}/{t}':>8} | "
                f"{row[0]:>6.3f} {bare[0]:>9.3f} | "
                f"{row[1]:>7.3f} {bare[1]:>9.3f} {peer_kb:>5.0f} | "
                f"{row[2]:>6.3f} {bare[2]:>9.3f} {ours_kb:>5.0f} | "
                f"{row[1] / row[2]:>7.1f}x {bare[1] / bare[2]:>8.1f}x",
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
