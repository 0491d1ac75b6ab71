"""Secure aggregation for Flower's Message API: a wrapper around ``flwr.serverapp`` strategies.

Switching a Message-API app is one wrapper on the server and one mod on the clients::

    from flwr.serverapp.strategy import FedAdam
    from secagg.flower import SecAggStrategy, secagg_mod

    strategy = SecAggStrategy(FedAdam(), num_shares=21, reconstruction_threshold=11)
    result = strategy.start(grid, initial_arrays=arrays, num_rounds=3)   # in the ServerApp
    app = ClientApp(mods=[secagg_mod])                                   # @app.train() unchanged

The wrapped strategy runs its own ``start`` loop: it samples the nodes and configures them
(``configure_train``: FedProx's ``proximal-mu`` and every other instruction reach the
clients unchanged), and it turns the aggregate into the next model (``aggregate_train``:
FedAvg's mean, FedAdam's server optimiser, FedAvgM's momentum...). In between, the train
messages it sends go through secagg's protocol (the Grid it is given is wrapped), and its
``aggregate_train`` receives a single reply holding what the protocol released: the weighted
mean of the survivors' arrays and announced metrics, with the total weight under the
strategy's ``weighted_by_key``. No client's arrays, metrics or example count reach the server
in clear.

Each client masks its **update** (returned minus received arrays), clipped to a range derived
from the announced arrays or configured, and the count of clipped values rides inside the
masked vector: the server learns the total and logs it (``max_clipped_fraction`` refuses to
release a round that clipped more). Integer arrays are summed exactly. See
:mod:`secagg.flower.encoding`.

The strategy's instructions (the model) travel with the protocol's masked-input request, not
with its first message: clients exchange keys first and run the ``@app.train()`` handler only
when their masked update is asked for, so a node keeps nothing of the model between messages
(its saved protocol state is a few hundred bytes whatever the model's size), and a node that
drops out before never trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from logging import ERROR, INFO, WARNING
from typing import Any, Literal, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp.grid import Grid
from flwr.serverapp.strategy import (
    Bulyan,
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    FedXgbBagging,
    FedXgbCyclic,
    Krum,
    MultiKrum,
    QFedAvg,
    Result,
    Strategy,
)
from flwr.supercore import log

from . import records as rk
from .dp import DpConfig
from .driver import ProtocolDriver, RoundReport, Threat, protocol_args
from .encoding import Encoding, EncodingError, round_seed

#: The protocol stage whose request carries the strategy's instructions to the clients.
MASKED_INPUT = "masked-input"

__all__ = ["SecAggStrategy", "StrategyRefused"]

_VALIDATED = (
    "a robust rule needs each client's update, which secure aggregation hides by design; "
    "robustness under masking needs validated inputs (clients prove bounds on their masked "
    "update: issue 11, docs/VALIDATION.md), which secagg does not have yet"
)
#: Strategies whose rule cannot run on a sum, and why (subclasses before their bases).
_REFUSED: tuple[tuple[type, str], ...] = (
    (Bulyan, f"Bulyan selects and trims individual updates: {_VALIDATED}"),
    (Krum, f"Krum picks the update closest to the others: {_VALIDATED}"),
    (MultiKrum, f"MultiKrum scores each update by its distances to the others: {_VALIDATED}"),
    (FedMedian, f"FedMedian takes the coordinate-wise median of the updates: {_VALIDATED}"),
    (
        FedTrimmedAvg,
        f"FedTrimmedAvg drops the largest and smallest values of each coordinate: {_VALIDATED}",
    ),
    (
        QFedAvg,
        "QFedAvg weighs each update by a power of that client's own loss, a non-linear rule "
        "the server cannot compute from a sum",
    ),
    (
        DifferentialPrivacyServerSideFixedClipping,
        "server-side clipping needs each client's update in clear; use "
        "SecAggStrategy(FedAvg(), dp=DpConfig(...)) (distributed noise added by the clients)",
    ),
    (
        DifferentialPrivacyServerSideAdaptiveClipping,
        "server-side clipping needs each client's update in clear; use "
        "SecAggStrategy(FedAvg(), dp=DpConfig(...)) (distributed noise added by the clients)",
    ),
    (
        DifferentialPrivacyClientSideFixedClipping,
        "Flower's DP wrappers add central noise the server could leave out; use "
        "SecAggStrategy(FedAvg(), dp=DpConfig(...)), whose clients clip and add the noise "
        "before masking",
    ),
    (
        DifferentialPrivacyClientSideAdaptiveClipping,
        "Flower's DP wrappers add central noise the server could leave out; use "
        "SecAggStrategy(FedAvg(), dp=DpConfig(...)), whose clients clip and add the noise "
        "before masking",
    ),
    (FedXgbBagging, "FedXgbBagging appends trees; it has no sum to protect"),
    (FedXgbCyclic, "FedXgbCyclic trains one client at a time; it has no sum to protect"),
)


class StrategyRefused(ValueError):
    """The wrapped strategy cannot run on a secure sum; the message says why."""


def refusal(strategy: object) -> str | None:
    """Why ``strategy`` cannot be wrapped, or ``None`` if it aggregates by a weighted mean."""
    for kind, why in _REFUSED:
        if isinstance(strategy, kind):
            return f"{type(strategy).__name__} cannot run on a secure sum: {why}"
    return None


class SecAggStrategy(ProtocolDriver, Strategy):  # pylint: disable=too-many-instance-attributes
    """A Message-API strategy whose train (and optionally evaluate) rounds are secure sums.

    Args:
        strategy: the ``flwr.serverapp.strategy`` strategy to wrap: ``FedAvg`` and its
            subclasses (``FedProx``, ``FedAdam``, ``FedYogi``, ``FedAdagrad``, ``FedAvgM``...).
            Strategies whose rule needs individual updates (``Krum``, ``MultiKrum``,
            ``Bulyan``, ``FedMedian``, ``FedTrimmedAvg``, ``QFedAvg``, Flower's DP wrappers,
            the XGBoost strategies) are refused (:class:`StrategyRefused` says why), and so is
            any other ``Strategy`` unless ``allow_custom=True``.
        num_shares, reconstruction_threshold, degree, timeout, threat, directory,
            assumed_corrupt, assumed_dropout, accept_weaker_params, graph, prg, seed: the
            protocol, as in :class:`SecAggWorkflow`.
        max_weight: the largest weight (the reply's ``weighted_by_key``, e.g.
            ``num-examples``) a client may send; it travels masked. Must be an int.
        bits: modulus 2^bits of the masked vectors (the upload is ``bits``/8 bytes per value).
            Every scale is the finest that cannot overflow with the sampled clients and
            ``max_weight``: the error bound of each mean is in ``RoundReport.error_bound``.
        update_bound: float updates are clipped to ±this (one value, or per array key);
            ``None`` (default): per array, the smallest power of two ≥ max(|announced
            array|, ``min_update_bound``).
        min_update_bound: the floor of the derived bound (arrays that start at zero).
        int_bound: integer arrays: updates are clipped to ±this and summed exactly.
        train_metrics: metric keys of the train replies to average securely, with their
            bound (a mapping), or a sequence of keys bounded by ``metric_bound``. Other keys
            never leave the client. The weight key is always summed.
        evaluate_metrics: ``None`` (default): evaluate rounds run in clear, as Flower's.
            A mapping or sequence: evaluate rounds are secure too, averaging these metrics.
        metric_bound: the bound of metrics given as a sequence.
        max_clipped_fraction: refuse to release a round in which more than this fraction of
            the survivors' array values were clipped (the model stays as it was; logged at
            ERROR). ``None``: release, and log the count.
        dp: differentially private rounds (:class:`DpConfig`), as in
            :class:`SecAggWorkflow`: clients clip their float update in L2 and add their
            noise share before masking; the mean is unweighted and no metric is sent.
        state: where the DP ledger is kept (record ``secagg.dp.ledger``): pass the
            ServerApp's ``context.state``; default: a record of this object
            (``self.state``).
        allow_custom: wrap a ``Strategy`` that is not a known mean (its
            ``aggregate_train`` receives one reply holding the secure mean).

    Raises:
        StrategyRefused: a strategy that cannot run on a sum.
        ValueError: inconsistent parameters.
    """

    def __init__(  # pylint: disable=too-many-arguments,too-many-locals
        self,
        strategy: Strategy,
        num_shares: int | float | None = None,
        reconstruction_threshold: int | float | None = None,
        *,
        degree: int | None = None,
        max_weight: int = 1000,
        bits: int = 32,
        update_bound: float | Mapping[str, float] | None = None,
        min_update_bound: float = 1.0,
        int_bound: int = 4096,
        train_metrics: Mapping[str, float] | Sequence[str] = (),
        evaluate_metrics: Mapping[str, float] | Sequence[str] | None = None,
        metric_bound: float = 100.0,
        max_clipped_fraction: float | None = None,
        timeout: float | None = None,
        threat: Threat = "honest-but-curious",
        directory: Mapping[int, bytes] | None = None,
        assumed_corrupt: float = 0.05,
        assumed_dropout: float = 0.05,
        accept_weaker_params: bool = False,
        graph: Literal["auto", "complete", "harary"] = "auto",
        prg: Literal["aes", "chacha"] = "aes",
        seed: int | None = None,
        dp: DpConfig | None = None,
        state: RecordDict | None = None,
        allow_custom: bool = False,
    ) -> None:
        why = refusal(strategy)
        if why is not None:
            raise StrategyRefused(why)
        if not isinstance(strategy, Strategy):
            raise StrategyRefused(
                f"expected a flwr.serverapp.strategy.Strategy, got {type(strategy).__name__}"
            )
        if not isinstance(strategy, FedAvg) and not allow_custom:
            raise StrategyRefused(
                f"{type(strategy).__name__} is not a FedAvg-family strategy: SecAggStrategy "
                "hands aggregate_train one reply holding the secure weighted mean, which is "
                "right for rules that are a weighted mean plus a server step. Pass "
                "allow_custom=True if yours is one"
            )
        if type(int_bound) is not int or int_bound < 1:
            raise ValueError(f"int_bound must be a positive int, got {int_bound!r}")
        if not (np.isfinite(min_update_bound) and min_update_bound > 0):
            raise ValueError(f"min_update_bound must be > 0, got {min_update_bound!r}")
        if max_clipped_fraction is not None and not 0 <= max_clipped_fraction <= 1:
            raise ValueError(
                f"max_clipped_fraction must be in [0, 1] or None, got {max_clipped_fraction!r}"
            )
        if dp is not None and (train_metrics or evaluate_metrics):
            raise ValueError(
                "DP rounds send no metrics (they would fall outside the DP guarantee): leave "
                "train_metrics and evaluate_metrics out with dp="
            )
        super().__init__(**protocol_args(locals()))
        self.strategy = strategy
        self.update_bound = update_bound
        self.min_update_bound = float(min_update_bound)
        self.int_bound = int_bound
        self.train_metrics = _bounds(train_metrics, metric_bound)
        self.evaluate_metrics = (
            None if evaluate_metrics is None else _bounds(evaluate_metrics, metric_bound)
        )
        self.max_clipped_fraction = max_clipped_fraction
        #: The ServerApp state holding the DP ledger.
        self.state = state if state is not None else RecordDict()
        self.weight_key = cast(str, getattr(strategy, "weighted_by_key", "num-examples"))
        # Arrays announced as integers once stay exact sums while their values are integral
        # (FedAvg's mean turns an int64 array into float64).
        self._int_keys: set[str] = set()
        self._rounds = 0

    # -- the Strategy interface: the wrapped strategy decides --------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        log(INFO, "\t├──> secagg: secure aggregation of train replies (%s)", self._describe())
        self.strategy.summary()

    def start(  # pylint: disable=too-many-arguments
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run the wrapped strategy's own ``start`` over a Grid whose train (and, with
        ``evaluate_metrics``, evaluate) exchanges are secure rounds."""
        if self.timeout is None:
            self.timeout = timeout
        log(INFO, "secagg: %s", self._describe())
        return self.strategy.start(
            cast(Grid, _SecureGrid(grid, self)),
            initial_arrays,
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
        )

    def _describe(self) -> str:
        return (
            f"{type(self.strategy).__name__}, threat {self.threat}, bits {self.bits}, "
            f"max_weight {self.max_weight}, "
            + (f"DP {self.dp.noise}" if self.dp is not None else "updates clipped and counted")
            + (", evaluate secure" if self.evaluate_metrics is not None else "")
        )

    # -- one secure round -------------------------------------------------------------------

    def secure_round(  # pylint: disable=too-many-locals,too-many-return-statements
        self, grid: Grid, messages: list[Message]
    ) -> list[Message]:
        """Run the messages the strategy meant to send as one secure round; returns the reply
        holding the released aggregate (none if the round was skipped or aborted)."""
        started = time.perf_counter()
        message_type = messages[0].metadata.message_type
        training = message_type == MessageType.TRAIN
        by_node = {m.metadata.dst_node_id: m for m in messages}
        if len(by_node) != len(messages):
            raise ValueError("the strategy addressed one node twice in a round")
        node_ids = sorted(by_node)  # protocol id = position + 1
        n = len(node_ids)
        current_round = _server_round(messages[0], self._rounds)
        report = RoundReport(server_round=current_round, sampled=n, message_type=message_type)
        self.reports.append(report)
        if self._skipped(report, "min_train_nodes"):
            return []
        arrays_key, announced = _announced_arrays(messages, training)
        roster = self._roster(node_ids)
        # Train and evaluate rounds of one server round need distinct protocol round ids
        # (clients answer a round id once).
        round_id = self._round_id(2 * current_round - (1 if training else 0))
        encoding: Encoding | None = None
        extra: dict[str, Any]
        if self.dp is not None:
            float_arrays = _dp_arrays(cast(ArrayRecord, announced))
            dim = int(sum(a.size for a in float_arrays))
            server = self._new_server(n, dim, round_id, roster, self.dp.server_kwargs())
            extra = {rk.ARRAYS: cast(str, arrays_key)}
        else:
            encoding = Encoding.build(
                message_type=message_type,
                arrays_key=arrays_key,
                arrays=announced,
                metrics=self.train_metrics if training else cast(dict, self.evaluate_metrics),
                weight_key=self.weight_key,
                max_weight=self.max_weight,
                clients=n,
                bits=self.bits,
                update_bound=self.update_bound,
                min_update_bound=self.min_update_bound,
                int_bound=self.int_bound,
                int_keys=frozenset(self._int_keys),
                nonce=None if self.seed is None else f"{self.seed}:{round_id}:{message_type}",
            )
            self._int_keys |= {s.name for s in encoding.segments if s.kind == "int"}
            dim = encoding.dim
            server = self._new_server(
                n, dim, round_id, roster, {}, round_seed=round_seed(encoding)
            )
            report.error_bound = encoding.error_bounds()
            extra = {rk.ENCODING: encoding.to_bytes()}
        report.k, report.t = server.k, server.t
        dp_round = self._dp_round(self.state, server, dim, report) if self.dp is not None else None
        if report.aborted is not None:
            return []
        self._announce(server, report, dim)

        def first_content(nid: int) -> RecordDict:
            # A new RecordDict per node (the strategy's is shared) for the protocol record.
            return RecordDict(dict(by_node[nid].content.items()))

        refused, _, _ = self._exchange(
            grid,
            self.state,
            server,
            node_ids,
            first_content,
            message_type=message_type,
            group_id=str(current_round),
            round_key=f"{current_round}:{round_id}:{message_type}",
            roster=roster,
            report=report,
            dp_round=dp_round,
            started=started,
            first_fields=extra,
            # The instructions (and the model) go with the masked-input request: clients
            # train only then, and keep nothing of the model between messages.
            content_at=MASKED_INPUT,
        )
        if refused:
            return []
        total = self._released_sum(server, node_ids, report, dp_round)
        if total is None:
            return []
        first = by_node[report.survivors[0]]
        if dp_round is not None:
            return self._dp_reply(dp_round, total, cast(str, arrays_key), announced, report, first)
        return self._reply(cast(Encoding, encoding), total, announced, report, first)

    def _reply(  # pylint: disable=too-many-arguments
        self,
        encoding: Encoding,
        total: np.ndarray,
        announced: ArrayRecord | None,
        report: RoundReport,
        first: Message,
    ) -> list[Message]:
        try:
            weight, clipped, clipped_metrics, arrays, metrics = encoding.decode(total, announced)
        except EncodingError as exc:
            report.aborted = str(exc)
            log(ERROR, "secagg: round %s released nothing: %s", report.server_round, exc)
            return []
        coordinates = encoding.array_coordinates
        fraction = clipped / (coordinates * len(report.survivors)) if coordinates else 0.0
        report.clipped = {
            "arrays": clipped,
            "metrics": clipped_metrics,
            "coordinates": coordinates,
            "fraction": fraction,
        }
        level = WARNING if clipped or clipped_metrics else INFO
        log(
            level,
            "secagg: round %s: %s of %s array values (%.3g%%) and %s metric values were clipped "
            "(totals over the %s survivors; raise update_bound / int_bound / the metric bound "
            "if this grows)",
            report.server_round,
            clipped,
            coordinates * len(report.survivors),
            100 * fraction,
            clipped_metrics,
            len(report.survivors),
        )
        if self.max_clipped_fraction is not None and fraction > self.max_clipped_fraction:
            report.aborted = (
                f"{fraction:.3g} of the array values were clipped, more than "
                f"max_clipped_fraction = {self.max_clipped_fraction}: the mean is not released "
                "to the strategy (the model stays as it was); raise update_bound"
            )
            log(ERROR, "secagg: round %s refused: %s", report.server_round, report.aborted)
            return []
        self._log_released(report)
        content = RecordDict()
        if encoding.arrays_key is not None:
            content[encoding.arrays_key] = ArrayRecord(
                {k: Array(np.asarray(v, order="C")) for k, v in arrays.items()}
            )
        content["metrics"] = MetricRecord({self.weight_key: weight, **metrics})
        return [Message(content, reply_to=first)]

    def _dp_reply(  # pylint: disable=too-many-arguments
        self,
        dp_round: Any,
        total: np.ndarray,
        arrays_key: str,
        announced: ArrayRecord | None,
        report: RoundReport,
        first: Message,
    ) -> list[Message]:
        record = cast(ArrayRecord, announced)
        float_arrays = _dp_arrays(record)
        flat = self._dp_release(dp_round, total, float_arrays, report)
        if flat is None:
            return []
        arrays, offset = {}, 0
        for name, a in zip(record.keys(), float_arrays):
            part = flat[offset : offset + a.size].reshape(a.shape)
            arrays[name] = Array(np.asarray(part, dtype=a.dtype, order="C"))
            offset += a.size
        self._log_released(report, "DP mean")
        content = RecordDict()
        content[arrays_key] = ArrayRecord(arrays)
        # Unweighted: every survivor counts once.
        content["metrics"] = MetricRecord({self.weight_key: len(report.survivors)})
        return [Message(content, reply_to=first)]


class _SecureGrid:
    """The Grid the wrapped strategy sees: its train (and secure evaluate) exchanges become
    secure rounds; everything else goes to the real Grid."""

    def __init__(self, grid: Grid, owner: SecAggStrategy) -> None:
        self._grid = grid
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        batch = list(messages)
        if not batch:
            return []
        kinds = {m.metadata.message_type for m in batch}
        secure = {MessageType.TRAIN}
        if self._owner.evaluate_metrics is not None:
            secure.add(MessageType.EVALUATE)
        if kinds & secure:
            if len(kinds) != 1:
                raise ValueError(f"a round mixes message types {sorted(kinds)}")
            if MessageType.TRAIN in kinds:
                self._owner._rounds += 1  # pylint: disable=protected-access
            return self._owner.secure_round(self._grid, batch)
        return self._grid.send_and_receive(batch, timeout=timeout)


def _server_round(message: Message, fallback: int) -> int:
    """The strategy's round number (FedAvg puts it in the config as ``server-round``)."""
    for record in message.content.config_records.values():
        value = record.get("server-round")
        if type(value) is int:
            return value
    return fallback


def _announced_arrays(
    messages: list[Message], training: bool
) -> tuple[str | None, ArrayRecord | None]:
    """The ArrayRecord the strategy sends (the same to every node), and its key."""
    records = messages[0].content.array_records
    if not training:
        return None, None
    if len(records) != 1:
        raise ValueError(
            f"a secure train round needs exactly one ArrayRecord in the instructions, got "
            f"{len(records)}"
        )
    key, record = next(iter(records.items()))
    for m in messages[1:]:
        other = m.content.array_records.get(key)
        if other is record:
            continue
        if other is None or list(other.keys()) != list(record.keys()) or any(
            other[k].data != record[k].data for k in record.keys()
        ):
            raise ValueError(
                "the strategy sent different arrays to different nodes: a secure mean of "
                "updates needs one global model per round"
            )
    return key, record


def _dp_arrays(record: ArrayRecord) -> list[np.ndarray]:
    arrays = [a.numpy() for a in record.values()]
    odd = [f"{k} ({a.dtype})" for k, a in zip(record.keys(), arrays) if a.dtype.kind != "f"]
    if odd:
        raise ValueError(
            f"DP rounds average float arrays only; {odd} would need their own sensitivity "
            "(drop them from the ArrayRecord, or run without dp=)"
        )
    return arrays


def _bounds(metrics: Mapping[str, float] | Sequence[str], default: float) -> dict[str, float]:
    if isinstance(metrics, str):
        raise ValueError("metrics must be a mapping key -> bound or a sequence of keys")
    if isinstance(metrics, Mapping):
        return {str(k): float(v) for k, v in metrics.items()}
    return {str(k): float(default) for k in metrics}
