"""Flower's Message API + secagg on scikit-learn's digits: FedAvg and FedAdam, secure and plain.

    python examples/flower_message_api/run.py            # 20 clients, 15 rounds, 10% dropouts
    python examples/flower_message_api/run.py --quick    # 4 rounds

A ``ServerApp`` runs a ``flwr.serverapp.strategy`` strategy (``FedAvg`` or ``FedAdam``) with
``strategy.start(...)``; the ``ClientApp`` has one ``@app.train()`` and one
``@app.evaluate()`` handler. Secure aggregation is one wrapper and one mod::

    strategy = SecAggStrategy(FedAdam(...), train_metrics={"train_loss": 64.0})
    client_app = ClientApp(mods=[secagg_mod])

The model is the digits MLP of ``examples/flower_digits`` plus an int64 buffer
(``num_batches_tracked``, as PyTorch's BatchNorm keeps): secagg sums its updates exactly as
integers. Every mode starts from the same model, partitions, SGD seeds and dropouts (10% of the
clients vanish every round after sharing their keys), so secure and plain curves should
coincide up to the encoding's stated error. Writes ``accuracy.png`` and ``results.json`` to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "flower_digits"))

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.app.message_type import MessageType  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAdam, FedAvg  # noqa: E402

from secagg.flower import (  # noqa: E402
    InProcessGrid,
    SecAggStrategy,
    run_server_app,
    secagg_mod,
)

import task  # noqa: E402  pylint: disable=wrong-import-position  (examples/flower_digits/task.py)

MODES = {
    "fedavg": "plain FedAvg",
    "secagg-fedavg": "SecAggStrategy(FedAvg)",
    "fedadam": "plain FedAdam",
    "secagg-fedadam": "SecAggStrategy(FedAdam)",
}
LAYERS = ("w1", "b1", "w2", "b2")
COUNTER = "num_batches_tracked"


def _record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})


@dataclass(frozen=True)
class Setup:
    num_clients: int = 20
    rounds: int = 15
    hidden: int = 32
    dropout: float = 0.1
    seed: int = 0
    epochs: int = 2


def initial_arrays(setup: Setup) -> ArrayRecord:
    params = task.init_params(setup.hidden, seed=setup.seed)
    arrays = {name: p.astype(np.float32) for name, p in zip(LAYERS, params, strict=True)}
    arrays[COUNTER] = np.array(0, dtype=np.int64)
    return _record(arrays)


def _params(record: ArrayRecord) -> list[np.ndarray]:
    return [record[name].numpy().astype(np.float64) for name in LAYERS]


def make_client_app(setup: Setup, parts: task.Partitions, secure: bool) -> ClientApp:
    """An unchanged Message-API ClientApp; ``secure`` only adds the mod."""
    app = ClientApp(mods=[secagg_mod] if secure else [])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        rnd = int(msg.content["config"]["server-round"])
        arrays = msg.content["arrays"]
        x, y = parts.x[p], parts.y[p]
        seed = setup.seed * 1000 + rnd * 100 + p
        new = task.train(_params(arrays), x, y, epochs=setup.epochs, seed=seed)
        batches = setup.epochs * -(-len(y) // 16)
        out = {name: a.astype(np.float32) for name, a in zip(LAYERS, new, strict=True)}
        out[COUNTER] = np.asarray(np.rint(arrays[COUNTER].numpy()), dtype=np.int64) + batches
        loss, _ = task.evaluate(new, x, y)
        metrics = MetricRecord({"num-examples": len(y), "train_loss": loss})
        return Message(RecordDict({"arrays": _record(out), "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        loss, acc = task.evaluate(_params(msg.content["arrays"]), parts.x[p], parts.y[p])
        metrics = MetricRecord({"num-examples": len(parts.y[p]), "loss": loss, "accuracy": acc})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def make_strategy(mode: str, setup: Setup) -> Any:
    common = {"fraction_evaluate": 0.0, "min_available_nodes": setup.num_clients}
    inner = FedAdam(eta=0.05, tau=1e-3, **common) if "fedadam" in mode else FedAvg(**common)
    if not mode.startswith("secagg"):
        return inner
    return SecAggStrategy(inner, train_metrics={"train_loss": 64.0}, seed=setup.seed)


def dropouts(setup: Setup) -> Callable[[int, Message], bool]:
    """The same clients vanish in every mode: in round r, the k partitions chosen from the
    seed, after their first message (secure: after sharing keys; plain: instead of
    answering)."""
    k = round(setup.dropout * setup.num_clients)
    counts: dict[tuple[int, int], int] = {}

    def chosen(rnd: int) -> set[int]:
        rng = np.random.default_rng([setup.seed, rnd])
        return set(rng.choice(setup.num_clients, size=k, replace=False).tolist())

    def vanish(partition: int, msg: Message) -> bool:
        if msg.metadata.message_type != MessageType.TRAIN:
            return False
        if "config" in msg.content.config_records:
            rnd = int(msg.content["config"]["server-round"])
        else:
            rnd = int(msg.metadata.group_id)
        step = counts[(rnd, partition)] = counts.get((rnd, partition), -1) + 1
        secure = "secagg" in msg.content.config_records or step > 0
        if partition not in chosen(rnd):
            return False
        # Secure rounds: the 3rd message (masked input) is the one never answered, so the
        # client trained and shared keys first; plain rounds: the only one.
        return step == 2 if secure else True

    return vanish


def run_mode(mode: str, setup: Setup, parts: task.Partitions) -> dict[str, Any]:
    history: dict[str, list[float]] = {"accuracy": [], "loss": []}
    counters: list[float] = []
    holder: list[Any] = []
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = make_strategy(mode, setup)
        holder.append(strategy)

        def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord:
            loss, acc = task.evaluate(_params(arrays), parts.x_test, parts.y_test)
            history["accuracy"].append(acc)
            history["loss"].append(loss)
            counters.append(float(arrays[COUNTER].numpy()))
            return MetricRecord({"accuracy": acc, "loss": loss})

        holder.append(
            strategy.start(grid, initial_arrays(setup), num_rounds=setup.rounds,
                           evaluate_fn=evaluate_fn)
        )

    grid = InProcessGrid(
        make_client_app(setup, parts, mode.startswith("secagg")),
        setup.num_clients,
        seed=setup.seed,
        vanish=dropouts(setup),
    )
    start = time.perf_counter()
    run_server_app(app, grid)
    out: dict[str, Any] = {
        **history,
        "counter": counters,
        "seconds": time.perf_counter() - start,
        "train_loss": [
            float(m["train_loss"]) for _, m in sorted(holder[1].train_metrics_clientapp.items())
        ],
    }
    strategy = holder[0]
    if isinstance(strategy, SecAggStrategy):
        out["rounds"] = [
            {
                "round": r.server_round,
                "k": r.k,
                "t": r.t,
                "survivors": len(r.survivors),
                "dropouts": [d["stage"] for d in r.dropouts],
                "aborted": r.aborted,
                "clipped": r.clipped,
                "error_bound": max((r.error_bound or {}).values(), default=0.0),
                "seconds": r.seconds,
            }
            for r in strategy.reports
        ]
    return out


def plot(results: dict[str, dict[str, Any]], setup: Setup, path: Path) -> None:
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"fedavg": "-", "secagg-fedavg": "--", "fedadam": "-", "secagg-fedadam": "--"}
    colors = {"fedavg": "C0", "secagg-fedavg": "C1", "fedadam": "C2", "secagg-fedadam": "C3"}
    for mode, res in results.items():
        ax.plot(range(len(res["accuracy"])), res["accuracy"], styles[mode], color=colors[mode],
                marker="o", markersize=3, label=MODES[mode])
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"Flower Message API on digits: {setup.num_clients} clients, "
        f"{round(100 * setup.dropout)}% vanish each round"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    setup = Setup(num_clients=args.clients, rounds=4 if args.quick else args.rounds,
                  dropout=args.dropout)
    parts = task.load_partitions(setup.num_clients, seed=setup.seed)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}")
    results = {}
    for mode in modes:
        results[mode] = run_mode(mode, setup, parts)
        print(f"{mode:15s} accuracy per round {np.round(results[mode]['accuracy'], 3).tolist()} "
              f"({results[mode]['seconds']:.1f} s)")
    for mode in modes:
        plain = mode.removeprefix("secagg-")
        if mode.startswith("secagg") and plain in results:
            acc = np.abs(np.subtract(results[mode]["accuracy"], results[plain]["accuracy"]))
            loss = np.abs(np.subtract(results[mode]["loss"], results[plain]["loss"]))
            cnt = np.abs(np.subtract(results[mode]["counter"], results[plain]["counter"]))
            results[mode]["max_accuracy_gap"] = float(acc.max())
            results[mode]["max_loss_gap"] = float(loss.max())
            results[mode]["max_counter_gap"] = float(cnt.max())
            print(f"{mode}: largest gap to {plain}: accuracy {acc.max():.4f}, "
                  f"loss {loss.max():.2e}, int64 counter {cnt.max():.1e}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, setup, args.out / "accuracy.png")
    (args.out / "results.json").write_text(
        json.dumps({"setup": setup.__dict__, "results": results}, indent=1)
    )
    print(f"wrote {args.out / 'accuracy.png'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
