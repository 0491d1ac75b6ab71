"""Time per round: Flower's own SecAgg+ against secagg, inside the same Flower app.

    python examples/flower_digits/compare.py                        # 20 and 100 clients, ~10^4 and ~10^5 params
    python examples/flower_digits/compare.py --clients 20 --hidden 128 --rounds 3

Both secure workflows run in the same ServerApp (FedAvg, same model, same data, same
InProcessGrid, every message serialized through Flower's protobufs), with the same
``num_shares`` / ``reconstruction_threshold``; plain FedAvg runs too, as the floor (training
plus Flower's message handling). A round's time is the fit workflow's wall time: training,
every client's protocol work, the server's, and the message handling, all in this process
on one core. Prints the medians over ``--rounds`` rounds and writes ``compare.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
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
    setup = app.Setup(num_clients=n, rounds=rounds, hidden=hidden, num_shares=num_shares, threshold=threshold)
    inner = app.fit_workflow(mode, setup) or default_fit_workflow
    times: list[float] = []

    def timed(grid, context) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        inner(grid, context)
        times.append(time.perf_counter() - start)

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
        "up_kb_per_client_round": sum(s.bytes_up for s in stats) / n / rounds / 1e3,
        "final_accuracy": history.accuracy[-1],
    }


def main() -> None:
    """Run the grid of (clients, model size) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="20,100", help="comma-separated client counts")
    parser.add_argument("--hidden", default="128,1500", help="hidden units: 128 = 9,610 params, 1500 = 112,510")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration (median)")
    parser.add_argument("--dropout", type=float, default=0.0, help="fraction vanishing before upload")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.ERROR)

    rows = []
    header = (
        f"{'n':>4} {'params':>8} {'k+1/t':>6} | {'FedAvg s':>8} | {'SecAgg+ s':>9} {'up KB':>7} | "
        f"{'secagg s':>8} {'up KB':>7} | {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in (int(c) for c in args.clients.split(",")):
        for hidden in (int(h) for h in args.hidden.split(",")):
            res: dict[str, dict[str, float]] = {}
            for mode in ("fedavg", "secaggplus", "secagg"):
                res[mode] = measure(mode, n, hidden, args.rounds, args.dropout)
            s, t = _shares(n)
            ratio = res["secaggplus"]["round_s"] / res["secagg"]["round_s"]
            print(
                f"{n:>4} {task.num_params(hidden):>8} {f'{s}/{t}':>6} | {res['fedavg']['round_s']:>8.3f} | "
                f"{res['secaggplus']['round_s']:>9.3f} {res['secaggplus']['up_kb_per_client_round']:>7.0f} | "
                f"{res['secagg']['round_s']:>8.3f} {res['secagg']['up_kb_per_client_round']:>7.0f} | {ratio:>7.1f}x",
                flush=True,
            )
            rows.append({"clients": n, "params": task.num_params(hidden), "num_shares": s, "threshold": t, **res})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps({"dropout": args.dropout, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
