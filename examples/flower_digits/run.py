"""Train on digits with Flower, with and without secure aggregation, and plot the accuracy.

    python examples/flower_digits/run.py            # 20 clients, 15 rounds, 10% dropouts
    python examples/flower_digits/run.py --quick    # 20 clients, 4 rounds

Every mode starts from the same model and uses the same partitions, SGD seeds and dropouts,
so plain FedAvg and secagg should give nearly identical curves (secagg's mean differs only by
its fixed-point rounding). ``secagg-dp`` runs the same Flower app with
``SecAggWorkflow(dp=DpConfig(...))``: the clients add distributed discrete Gaussian noise
within an (ε, δ) budget over all rounds, and the workflow's ledger reports ε per round (see
``privacy.py``). Writes ``accuracy.png`` and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from secagg.flower import InProcessGrid, run_server_app  # noqa: E402  pylint: disable=wrong-import-position

import app  # noqa: E402  pylint: disable=wrong-import-position
import privacy  # noqa: E402  pylint: disable=wrong-import-position
import task  # noqa: E402  pylint: disable=wrong-import-position

LABELS = {
    "fedavg": "plain FedAvg (server sees each update)",
    "secagg": "secagg (SecAggWorkflow + secagg_mod)",
    "secaggplus": "Flower SecAgg+ (SecAggPlusWorkflow)",
}
DP_MODE = "secagg-dp"


def run_mode(
    setup: app.Setup, mode: str, plan: app.DropPlan, dp: privacy.DpSetup | None = None
) -> dict[str, object]:
    """Train with ``mode``; returns accuracies per round, timings and the workflow's reports."""
    history = app.History()
    dp_config, planned = None, None
    if mode == DP_MODE:
        dp_config, planned = privacy.dp_config(
            setup, dp or privacy.DpSetup(), privacy.min_survivors(setup, plan.rate)
        )
    workflow = app.fit_workflow(mode, setup, dp=dp_config)
    grid = InProcessGrid(
        app.make_client_app(setup, mode),
        setup.num_clients,
        seed=setup.seed,
        vanish=plan.vanish_fn(setup.num_clients, app.EXCHANGES[mode]),
    )
    start = time.perf_counter()
    run_server_app(app.make_server_app(setup, mode, history, workflow), grid)
    seconds = time.perf_counter() - start
    out: dict[str, object] = {
        "accuracy": history.accuracy,
        "loss": history.loss,
        "seconds": seconds,
    }
    reports = getattr(workflow, "reports", None)
    if reports is not None:
        out["rounds"] = [
            {
                "round": r.server_round,
                "k": r.k,
                "t": r.t,
                "survivors": len(r.survivors),
                "dropouts": [{"stage": d["stage"], "reason": d["reason"]} for d in r.dropouts],
                "aborted": r.aborted,
                "seconds": r.seconds,
                "epsilon_spent": r.epsilon_spent,
                "expected_rmse": (r.dp or {}).get("expected_rmse"),
            }
            for r in reports
        ]
    if dp_config is not None:
        # ε after each round, from the workflow's ledger (index 0: before training).
        out["epsilon"] = [0.0, *(r.epsilon_spent for r in reports)]
        out["noise_multiplier"] = dp_config.noise_multiplier
        out["min_survivors"] = dp_config.min_survivors
        out["plan"] = planned
        out["dp"] = dp.__dict__ if dp is not None else privacy.DpSetup().__dict__
        out["label"] = (
            f"secagg + DP via Flower (ε = {out['epsilon'][-1]:.1f}, δ = {dp_config.delta:g})"
        )
    return out


def repeat_dp(
    setup: app.Setup, plan: app.DropPlan, dp: privacy.DpSetup, repeats: int
) -> dict[str, object]:
    """``repeats`` secagg-dp runs: the first run's details, with ``accuracy`` the median per
    round over all runs (``accuracy_runs``, ``accuracy_min`` and ``accuracy_max`` beside it)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    runs = [run_mode(setup, DP_MODE, plan, dp) for _ in range(repeats)]
    out = dict(runs[0])
    table = np.array([r["accuracy"] for r in runs], dtype=float)
    out["accuracy_runs"] = table.tolist()
    out["accuracy"] = np.median(table, axis=0).tolist()
    out["accuracy_min"] = table.min(axis=0).tolist()
    out["accuracy_max"] = table.max(axis=0).tolist()
    out["seconds"] = sum(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
    if repeats > 1:
        out["label"] = f"{str(out['label'])[:-1]}; median, range of {repeats} runs)"
    return out


def plot(
    results: dict[str, dict[str, object]], setup: app.Setup, plan: app.DropPlan, path: Path
) -> None:
    """Accuracy per round, one line per mode."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    styles = {
        "fedavg": ("-", "o", 7),
        "secagg": ("--", "x", 7),
        "secaggplus": (":", "+", 9),
        DP_MODE: ("-.", "s", 5),
    }
    for mode, res in results.items():
        acc = res["accuracy"]
        line, marker, size = styles.get(mode, ("-.", "s", 5))
        (drawn,) = ax.plot(
            range(len(acc)),
            acc,
            line,
            marker=marker,
            markersize=size,
            label=res.get("label", LABELS.get(mode, mode)),
        )
        if len(res.get("accuracy_runs", [])) > 1:
            ax.fill_between(
                range(len(acc)),
                res["accuracy_min"],
                res["accuracy_max"],
                color=drawn.get_color(),
                alpha=0.2,
                lw=0,
            )
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (digits, 360 held-out images)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{setup.num_clients} clients, MLP 64-{setup.hidden}-10 "
        f"({task.num_params(setup.hidden)} params), {plan.rate:.0%} drop out per round",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    """Parse arguments, train in every mode, write the plot and the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--dropout", type=float, default=0.1, help="fraction of clients that vanish each round"
    )
    parser.add_argument(
        "--hidden", type=int, default=32, help="hidden units (0: logistic regression)"
    )
    parser.add_argument(
        "--modes",
        default=f"fedavg,secagg,{DP_MODE}",
        help=f"comma-separated, from {','.join(app.MODES)}",
    )
    parser.add_argument("--dp-epsilon", type=float, default=10.0, help="secagg-dp: ε budget")
    parser.add_argument("--dp-delta", type=float, default=1e-5, help="secagg-dp: δ")
    parser.add_argument("--dp-clip", type=float, default=1.0, help="secagg-dp: L2 clip")
    parser.add_argument(
        "--dp-repeats",
        type=int,
        default=1,
        help="secagg-dp: runs (the clients' noise comes from the OS, so runs differ); with "
        "more than one, the plot shows the median per round and the min-max band",
    )
    parser.add_argument(
        "--dropout-exchange",
        type=int,
        default=2,
        help="the message of the round at which clients vanish: 0 keys, 1 shares, "
        "2 masked update (default), 3 unmask",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--quick", action="store_true", help="4 rounds")
    args = parser.parse_args()
    if args.clients < 20 and not args.quick:
        print("note: the example is meant for at least 20 clients", file=sys.stderr)
    setup = app.Setup(
        num_clients=args.clients,
        rounds=4 if args.quick else args.rounds,
        hidden=args.hidden,
        seed=args.seed,
    )
    plan = app.DropPlan(rate=args.dropout, at_exchange=args.dropout_exchange, seed=args.seed + 1)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in app.MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {app.MODES}")
    logging.getLogger("flwr").setLevel(logging.WARNING)

    results: dict[str, dict[str, object]] = {}
    dp = privacy.DpSetup(epsilon=args.dp_epsilon, delta=args.dp_delta, clip=args.dp_clip)
    for mode in modes:
        if mode == DP_MODE:
            results[mode] = repeat_dp(setup, plan, dp, max(1, args.dp_repeats))
        else:
            results[mode] = run_mode(setup, mode, plan, dp)
        acc = results[mode]["accuracy"]
        line = f"{mode:>10}: final accuracy {acc[-1]:.4f} in {results[mode]['seconds']:.1f} s"
        if mode == DP_MODE:
            finals = sorted(a[-1] for a in results[mode]["accuracy_runs"])
            if len(finals) > 1:
                line += f" (median of {len(finals)} runs, {finals[0]:.4f} to {finals[-1]:.4f})"
            line += (
                f", ε = {results[mode]['epsilon'][-1]:.2f} at δ = {args.dp_delta:g} "
                f"(noise multiplier {results[mode]['noise_multiplier']:.3f}, noise sized for "
                f"{results[mode]['min_survivors']} survivors)"
            )
        print(line)

    if "fedavg" in results:
        base = results["fedavg"]["accuracy"]
        for mode, res in results.items():
            if mode not in ("fedavg", DP_MODE):
                gap = max(abs(a - b) for a, b in zip(res["accuracy"], base, strict=True))
                loss_gap = max(
                    abs(a - b) for a, b in zip(res["loss"], results["fedavg"]["loss"], strict=True)
                )
                res["max_accuracy_gap_vs_fedavg"] = gap
                res["max_loss_gap_vs_fedavg"] = loss_gap
                print(
                    f"{mode:>10}: largest gap to plain FedAvg over all rounds: accuracy {gap:.4f}, "
                    f"test loss {loss_gap:.2e}"
                )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, setup, plan, args.out / "accuracy.png")
    payload = {
        "setup": setup.__dict__,
        "dropout": plan.rate,
        "dropout_exchange": plan.at_exchange,
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out / 'accuracy.png'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
