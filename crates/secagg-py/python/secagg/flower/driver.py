"""The protocol driver shared by :class:`SecAggWorkflow` (Flower's legacy ``DefaultWorkflow``)
and :class:`SecAggStrategy` (Flower's Message API): one secure round over a Flower ``Grid``.

Each exchange with the clients is one ``grid.send_and_receive``: the driver sends every client
still in the round the protocol messages the Rust server queued for it, feeds the replies
back, and tells the server which clients did not answer (they drop out at that stage). The
Rust server decides everything else: the neighbour graph, who survives, when the round aborts,
and the released aggregate. DP rounds are checked against the privacy ledger before they
start and charged before their unmask requests go out, whichever front end runs them.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from logging import ERROR, INFO, WARNING
from typing import Any, Literal, cast

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp.grid import Grid
from flwr.supercore import log

import secagg

from . import records as rk
from .dp import SAMPLING_RATE_REFUSED, DpConfig, load_ledger, save_ledger

Threat = Literal["honest-but-curious", "malicious"]

# No stage deadline inside the Rust server: the Grid's ``timeout`` bounds each exchange, and
# whoever did not answer is reported as gone right after it.
_NO_DEADLINE_MS = 2**62
# More steps than any round needs (5 stages; validated rounds add the challenge and may queue
# disputes and exclusion requests); a guard against a stuck loop.
_MAX_STEPS = 32

@dataclass
class RoundReport:
    """What one secure round did (also logged)."""

    server_round: int
    sampled: int
    message_type: str = "train"
    """Message-API rounds: ``"train"`` or ``"evaluate"``."""
    k: int = 0
    t: int = 0
    survivors: list[int] = field(default_factory=list)
    """Flower node ids whose updates are in the mean."""
    dropouts: list[dict[str, Any]] = field(default_factory=list)
    """``{"node_id", "stage", "reason"}`` per client the round lost."""
    errors: list[str] = field(default_factory=list)
    """What failing clients (error replies) and misbehaving ones reported."""
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """Validated rounds (``validate_l2``): ``{"node_id", "stage", "reason"}`` per client a
    validation check rejected (``"validation: norm"``, ``"validation: binding"``,
    ``"validation: self mask"``...), excluded from the mean; also among ``dropouts``."""
    aborted: str | None = None
    seconds: float = 0.0
    exchanges: int = 0
    epsilon_spent: float | None = None
    """DP rounds: the ledger's ε after this round, at sampling rate 1 (against the server
    with distributed noise; see ``dp["epsilon_holds_against"]``). A round is charged before
    its unmask requests go out (``charged``) and stays charged if it aborts after that; a
    round refused or aborted before it leaves the ledger as it found it. ``None`` without
    DP."""
    charged: bool = False
    """DP rounds: whether this round was charged to the ledger. The charge is written before
    the unmask requests are sent, i.e. before the server could compute the sum, so a round
    that aborts later (too few unmask replies, a sum that cannot be decoded) stays
    charged; ``aborted`` then says so."""
    clipped: dict[str, Any] | None = None
    """Message-API rounds without DP: ``{"arrays": coordinates clipped, "metrics": metric
    values clipped, "coordinates": coordinates per client, "fraction": arrays /
    (coordinates × survivors)}``, summed inside the masked vector (never by client)."""
    error_bound: dict[str, float] | None = None
    """Message-API rounds without DP: the largest error of each released mean (per array or
    metric key) against the same mean computed in clear from the clipped values."""
    dp: dict[str, Any] | None = None
    """DP rounds: the parameters (``noise``, ``central``, ``noise_multiplier``,
    ``clipping_norm``, ``delta``, ``epsilon_budget``, ``sampling_rate`` (always 1.0: every
    round is charged at rate 1), ``min_survivors``, ``dim``, ``padded_dim``, ``scale``),
    ``epsilon_before_round``, ``epsilon_after_round`` (what the round costs or would have
    cost; updated from the ledger as read again at the charge), ``order``,
    ``epsilon_holds_against`` (whom these ε hold against: with distributed noise the server
    and everyone who sees the model, at sampling rate 1 since the server sees who takes part;
    with central noise only those who see the model) and, once released, ``expected_rmse``
    (predicted error per coordinate of the mean update)."""


@dataclass
class _DpRound:
    """A DP round allowed by the budget: its encoding (which fixes its privacy cost) and
    whether it has been charged."""

    encoding: secagg.DpEncoding
    charged: bool = False


def _epsilon_holds_against(dp: DpConfig) -> str:
    """Whom the ε of the workflow's ledger holds against (every round charged at rate 1)."""
    if dp.central:
        return (
            "those who see the model only (central noise: the server sees the un-noised sum), "
            "at sampling rate 1"
        )
    return (
        "the server and everyone who sees the model, at sampling rate 1 (the server sees who "
        "takes part), if the min_survivors the noise is sized for are honest"
    )


#: The protocol options both front ends take and hand to :class:`ProtocolDriver`, which checks
#: them: one list, so that a new option is forwarded (and checked) in one place.
PROTOCOL_ARGS = (
    "num_shares",
    "reconstruction_threshold",
    "degree",
    "max_weight",
    "bits",
    "timeout",
    "threat",
    "directory",
    "assumed_corrupt",
    "assumed_dropout",
    "accept_weaker_params",
    "graph",
    "prg",
    "seed",
    "dp",
)


def protocol_args(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`PROTOCOL_ARGS` of a front end's constructor, from its ``locals()``."""
    return {name: scope[name] for name in PROTOCOL_ARGS}


class ProtocolDriver:  # pylint: disable=too-many-instance-attributes
    """The round machinery and the protocol parameters both Flower front ends share (see
    :class:`SecAggWorkflow` for the meaning of each argument)."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        num_shares: int | float | None = None,
        reconstruction_threshold: int | float | None = None,
        *,
        degree: int | None = None,
        max_weight: int = 1000,
        bits: int = 32,
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
    ) -> None:
        if type(max_weight) is not int or max_weight < 1:
            raise ValueError(f"max_weight must be a positive int, got {max_weight!r}")
        if isinstance(num_shares, bool) or (
            num_shares is not None and not isinstance(num_shares, (int, float))
        ):
            raise ValueError(f"num_shares must be an int, a float or None, got {num_shares!r}")
        if isinstance(num_shares, int) and num_shares % 2 == 0:
            raise ValueError(
                f"num_shares = {num_shares} is even: secagg's neighbour graph puts k/2 "
                f"neighbours on each side, so use {num_shares + 1} (k = {num_shares})"
            )
        if isinstance(num_shares, int) and num_shares < 3:
            raise ValueError(f"num_shares must be at least 3, got {num_shares}")
        if isinstance(num_shares, float) and not 0.0 < num_shares <= 1.0:
            raise ValueError(f"num_shares as a fraction must be in (0, 1], got {num_shares}")
        if isinstance(reconstruction_threshold, float) and not (
            0.0 < reconstruction_threshold <= 1.0
        ):
            raise ValueError(
                "reconstruction_threshold as a fraction must be in (0, 1], got "
                f"{reconstruction_threshold}"
            )
        if threat not in ("honest-but-curious", "malicious"):
            raise ValueError(f"threat must be 'honest-but-curious' or 'malicious', got {threat!r}")
        if (threat == "malicious") != (directory is not None):
            raise ValueError(
                "the malicious-server model needs the nodes' public keys (directory=...), and "
                "a directory is only used by that model"
            )
        if directory is not None:
            owners: dict[bytes, int] = {}
            for node, key in directory.items():
                if key in owners:
                    raise ValueError(
                        f"directory gives nodes {owners[key]} and {node} the same public key: "
                        "one party at two ids could be several neighbours of one client"
                    )
                owners[key] = node
        self.num_shares = num_shares
        self.reconstruction_threshold = reconstruction_threshold
        self.degree = degree
        self.max_weight = max_weight
        self.bits = bits
        self.timeout = timeout
        self.threat = threat
        self.directory = dict(directory) if directory is not None else None
        self.assumed_corrupt = assumed_corrupt
        self.assumed_dropout = assumed_dropout
        self.accept_weaker_params = accept_weaker_params
        self.graph = graph
        self.prg = prg
        if dp is not None and not isinstance(dp, DpConfig):
            raise ValueError(
                f"dp must be a secagg.flower.DpConfig or None, got {type(dp).__name__}"
            )
        if dp is not None and dp.sampling_rate != 1:  # DpConfig refuses it already
            raise ValueError(SAMPLING_RATE_REFUSED + f" (got sampling_rate={dp.sampling_rate!r})")
        self.seed = seed
        self.dp = dp
        #: One report per round this driver ran.
        self.reports: list[RoundReport] = []

    @staticmethod
    def _save_ledger(*args: Any) -> None:
        """Writes the ledger (:func:`secagg.flower.dp.save_ledger`); a front end may look it up
        in its own module, where tests replace it to make the write fail."""
        save_ledger(*args)

    # -- a round's start and end, as both front ends run them --------------------------------

    def _skipped(self, report: RoundReport, sampling_option: str) -> bool:
        """Whether a round of ``report.sampled`` clients cannot start (too few for the
        protocol, or for the survivors DP noise is sized for); logged, ``report.aborted``
        says why. ``sampling_option`` names the strategy's option that samples more."""
        n = report.sampled
        if n < 2:
            report.aborted = "fewer than 2 clients sampled"
            log(ERROR, "secagg: %s; skipping the %s round", report.aborted, report.message_type)
            return True
        if self.dp is not None and self.dp.min_survivors is not None and self.dp.min_survivors > n:
            report.aborted = (
                f"DpConfig.min_survivors = {self.dp.min_survivors} is more than the {n} clients "
                "sampled for this round: the noise could never be complete (sample more "
                f"clients, e.g. {sampling_option}, or lower min_survivors); no round was started"
            )
            log(ERROR, "secagg: round %s skipped: %s", report.server_round, report.aborted)
            return True
        return False

    @staticmethod
    def _announce(server: Any, report: RoundReport, dim: int) -> None:
        """Log the round about to start (and the planner's warnings)."""
        for warning in server.config.get("warnings", []):
            log(WARNING, "secagg: %s", warning)
        log(
            INFO,
            "secagg: %s round %s with %s clients, k = %s, t = %s, %s values",
            report.message_type,
            report.server_round,
            report.sampled,
            server.k,
            server.t,
            dim,
        )

    def _released_sum(
        self, server: Any, node_ids: list[int], report: RoundReport, dp_round: _DpRound | None
    ) -> np.ndarray | None:
        """The round's unmasked result once the exchanges are over, with ``report.survivors``;
        ``None`` if it aborted (logged; one already charged says it stays charged)."""
        if not server.finished or server.aborted is not None:
            report.aborted = server.aborted or "the round did not finish"
            self._abort_after_charge(report, dp_round)
            return None
        total = cast(np.ndarray, server.result())
        report.survivors = [node_ids[cid - 1] for cid in server.survivors]
        return total

    @staticmethod
    def _log_released(report: RoundReport, what: str = "mean") -> None:
        log(
            INFO,
            "secagg: released the %s of %s clients (%s dropped) in %.2f s",
            what,
            len(report.survivors),
            len(report.dropouts),
            report.seconds,
        )

    # -- parameters -------------------------------------------------------------------------

    def _k_t(self, n: int) -> tuple[int | None, int | None]:
        """(degree, threshold) for ``n`` sampled clients; ``None`` lets the threat model pick."""
        shares: int | None = None
        if self.degree is not None:
            shares = self.degree + 1
        elif isinstance(self.num_shares, float):
            shares = round(self.num_shares * n)
            if shares < n and shares % 2 == 0:
                shares += 1
            shares = max(3, min(shares, n))
        elif isinstance(self.num_shares, int):
            shares = min(self.num_shares, n)
        degree = None if shares is None else shares - 1
        threshold: int | None = None
        if isinstance(self.reconstruction_threshold, float):
            base = shares if shares is not None else n
            threshold = max(2, round(self.reconstruction_threshold * base))
        elif isinstance(self.reconstruction_threshold, int):
            threshold = self.reconstruction_threshold
        if degree is not None and threshold is not None:
            threshold = min(threshold, degree)
        return degree, threshold

    def _round_id(self, current_round: int) -> int:
        """The protocol round id of Flower round ``current_round``: fresh random bits (clients
        refuse a round id they took part in before), or the round number with ``seed``."""
        if self.seed is not None:
            return current_round
        return secrets.randbits(40) << 20 | current_round


    def _new_server(  # pylint: disable=too-many-arguments
        self,
        n: int,
        dim: int,
        round_id: int,
        roster: list[bytes] | None,
        encoding: Mapping[str, Any],
        round_seed: bytes | None = None,
    ) -> Any:
        """The Rust server of one round. ``encoding`` is how clients encode their inputs
        (``clip``/``max_weight``, the DP parameters, or nothing for integer sums); it goes into
        the round's configuration, which the session id covers, and so does ``round_seed``
        (default: random, or derived from ``seed``)."""
        degree, threshold = self._k_t(n)
        if round_seed is None:
            rng = np.random.default_rng([self.seed, round_id]) if self.seed is not None else None
            round_seed = rng.bytes(32) if rng is not None else secrets.token_bytes(32)
        return secagg.Server(
            clients=n,
            dim=dim,
            bits=self.bits,
            threat=self.threat,
            degree=degree,
            threshold=threshold,
            graph=self.graph,
            prg=self.prg,
            assumed_corrupt=self.assumed_corrupt,
            assumed_dropout=self.assumed_dropout,
            accept_weaker_params=self.accept_weaker_params,
            round_id=round_id,
            round_seed=round_seed,
            roster=roster,
            stage_timeout_ms=_NO_DEADLINE_MS,
            **encoding,
        )

    def _roster(self, node_ids: list[int]) -> list[bytes] | None:
        """Malicious model: the sampled nodes' public keys in protocol-id order."""
        if self.directory is None:
            return None
        missing = [nid for nid in node_ids if nid not in self.directory]
        if missing:
            raise ValueError(f"nodes {missing[:5]} have no public key in the directory")
        if len(set(node_ids)) != len(node_ids):
            raise ValueError(f"the strategy sampled a node twice: {node_ids}")
        return [self.directory[nid] for nid in node_ids]

    def _exchange(  # pylint: disable=too-many-arguments,too-many-locals
        self,
        grid: Grid,
        state: RecordDict,
        server: Any,
        node_ids: list[int],
        first_content: Callable[[int], RecordDict],
        *,
        message_type: str,
        group_id: str,
        round_key: str,
        roster: list[bytes] | None,
        report: RoundReport,
        dp_round: _DpRound | None,
        started: float,
        first_fields: Mapping[str, Any] | None = None,
        content_at: str | None = None,
    ) -> tuple[bool, dict[int, RecordDict], list[BaseException]]:
        """Run the round's exchanges until the server finished (or the DP charge refused
        it). The first message to node ``nid`` carries ``first_content(nid)`` (the
        strategy's instructions) next to the protocol record, which then also holds
        ``first_fields``; with ``content_at`` (a server stage, "masked-input"), the
        instructions and ``first_fields`` go with that stage's request instead (the first
        record keeps ``first_fields`` and says where the content comes). Returns (refused at the DP
        charge, the first reply of each protocol id that answered it, the failures);
        ``report`` has the dropouts, errors and time."""
        first_reply: dict[int, RecordDict] = {}
        failures: list[BaseException] = []
        refused = False
        server.start(0)
        for _ in range(_MAX_STEPS):
            if server.finished:
                break
            if dp_round is not None and not dp_round.charged and server.stage == "unmask":
                # The queued messages are the unmask requests: with the replies the server can
                # compute the sum. Charge the round now, or refuse it without sending them.
                try:
                    refused = not self._charge_dp(state, dp_round, report)
                except Exception:
                    self._settle(report, server, node_ids, failures, started)
                    raise
                if refused:
                    break
            outbox: dict[int, list[bytes]] = defaultdict(list)
            for cid, payload in server.outgoing():
                outbox[cid].append(payload)
            if not outbox:
                # Nothing to send yet the stage is open: close it (every client still in the
                # round has answered or was reported gone, so this only settles the stage).
                server.handle_timeout(_NO_DEADLINE_MS)
                continue
            first = report.exchanges == 0
            report.exchanges += 1
            with_content = server.stage == content_at if content_at is not None else first
            msgs = []
            for cid, payloads in outbox.items():
                nid = node_ids[cid - 1]
                record = ConfigRecord({rk.ROUND_KEY: round_key, rk.MESSAGES: payloads})
                if first or with_content:
                    for key, value in (first_fields or {}).items():
                        record[key] = value
                if first:
                    record[rk.CLIENT_ID] = cid
                    if roster is not None:
                        record[rk.ROSTER_NODES] = list(node_ids)
                    if content_at is not None:
                        record[rk.CONTENT_AT] = content_at
                content = first_content(nid) if with_content else RecordDict()
                content[rk.RECORD] = record
                msgs.append(
                    Message(
                        content=content,
                        dst_node_id=nid,
                        message_type=message_type,
                        group_id=group_id,
                    )
                )
            replies = grid.send_and_receive(msgs, timeout=self.timeout)
            answered = self._feed(server, replies, node_ids, first, first_reply, failures)
            for cid in outbox:
                if cid not in answered and not server.finished:
                    server.client_gone(0, cid)
        self._settle(report, server, node_ids, failures, started)
        return refused, first_reply, failures

    def _dp_round(
        self, state: RecordDict, server: Any, dim: int, report: RoundReport
    ) -> _DpRound | None:
        """The round's encoding and charge; refuses it (``report.aborted``) over budget."""
        dp = cast(DpConfig, self.dp)
        encoding = secagg.DpEncoding(server.config)
        spent, _ = load_ledger(state)
        before = spent.epsilon(dp.delta)
        # Sampling rate 1: the server sees who takes part, so sampling amplifies nothing
        # against it (and nothing here Poisson-samples).
        after = spent.composed(encoding, sampling_rate=1.0)
        after_eps, order = after.epsilon_order(dp.delta)
        report.epsilon_spent = before
        report.dp = {
            "noise": dp.noise,
            "central": dp.central,
            "noise_multiplier": dp.noise_multiplier,
            "clipping_norm": dp.clipping_norm,
            "delta": dp.delta,
            "epsilon_budget": dp.epsilon_budget,
            "sampling_rate": 1.0,
            "min_survivors": encoding.min_survivors,
            "dim": dim,
            "padded_dim": encoding.padded_dim,
            "scale": encoding.scale,
            "epsilon_before_round": before,
            "epsilon_after_round": after_eps,
            "order": order,
            "epsilon_holds_against": _epsilon_holds_against(dp),
        }
        if after_eps > dp.epsilon_budget:
            report.aborted = (
                f"privacy budget exhausted: ε = {before:.4f} spent, this round would bring it "
                f"to {after_eps:.4f} > the budget {dp.epsilon_budget} (δ = {dp.delta}); no "
                "round was started"
            )
            log(ERROR, "secagg: round %s refused: %s", report.server_round, report.aborted)
            return None
        log(
            INFO,
            "secagg: DP round (%s%s, z = %s, clip %s, noise sized for %s survivors): "
            "ε %.4f -> %.4f of %s, against %s",
            dp.noise,
            ", central" if dp.central else "",
            dp.noise_multiplier,
            dp.clipping_norm,
            encoding.min_survivors,
            before,
            after_eps,
            dp.epsilon_budget,
            _epsilon_holds_against(dp),
        )
        return _DpRound(encoding)

    def _charge_dp(self, state: RecordDict, dp_round: _DpRound, report: RoundReport) -> bool:
        """Charge the round before its unmask requests go out, i.e. before the server could
        compute its sum, so that no sum the server could see escapes the ledger. The ledger
        is read again now and only this round's cost (sampling rate 1) is added, as the
        service adds it in one transaction: whatever else charged it while the round ran
        (another workflow, a strategy sharing the population) stays charged. Returns
        ``False`` (``report.aborted`` says why) if that would take ε past the budget: then
        nothing is written and the caller sends no unmask request. A ledger that cannot be
        read or written raises, after ``report.aborted`` was set."""
        dp = cast(DpConfig, self.dp)
        try:
            spent, rounds = load_ledger(state)
            before = spent.epsilon(dp.delta)
            after = spent.composed(dp_round.encoding, sampling_rate=1.0)
            epsilon, order = after.epsilon_order(dp.delta)
            if report.dp is not None:
                report.dp.update(
                    epsilon_before_round=before, epsilon_after_round=epsilon, order=order
                )
            if epsilon > dp.epsilon_budget:
                report.epsilon_spent = before
                report.aborted = (
                    f"privacy budget exhausted while the round ran: the ledger now holds ε = "
                    f"{before:.4f} (charged elsewhere meanwhile), this round would bring it to "
                    f"{epsilon:.4f} > the budget {dp.epsilon_budget} (δ = {dp.delta}); refused "
                    "before its unmask requests: the server never computed its sum, nothing "
                    "was released or charged"
                )
                log(ERROR, "secagg: round %s refused: %s", report.server_round, report.aborted)
                return False
            self._save_ledger(state, after, [*rounds, report.server_round], epsilon, dp.delta)
        except Exception as exc:
            report.aborted = (
                f"the privacy ledger could not be charged ({type(exc).__name__}: {exc}); "
                "stopped before the unmask requests: nothing released or charged"
            )
            log(ERROR, "secagg: round %s: %s", report.server_round, report.aborted)
            raise
        dp_round.charged = True
        report.charged = True
        report.epsilon_spent = epsilon
        log(
            INFO,
            "secagg: round %s charged before unmasking: ε %.4f -> %.4f of %s, against %s",
            report.server_round,
            before,
            epsilon,
            dp.epsilon_budget,
            _epsilon_holds_against(dp),
        )
        return True

    @staticmethod
    def _abort_after_charge(report: RoundReport, dp_round: _DpRound | None) -> None:
        """Log an aborted round; one already charged says it stays charged."""
        if dp_round is not None and dp_round.charged:
            report.aborted = (
                f"{report.aborted}; the round stays charged (ε = {report.epsilon_spent:.4f}): "
                "its unmask requests had gone out, so the server could have computed its sum"
            )
        log(
            ERROR,
            "secagg: round %s aborted, nothing released: %s",
            report.server_round,
            report.aborted,
        )

    @staticmethod
    def _settle(  # pylint: disable=too-many-arguments
        report: RoundReport,
        server: Any,
        node_ids: list[int],
        failures: list[BaseException],
        started: float,
    ) -> None:
        """Record who dropped, the failures and the time once the exchanges are over."""
        report.dropouts = [
            {"node_id": node_ids[d["client_id"] - 1], "stage": d["stage"], "reason": d["reason"]}
            for d in server.dropouts
        ]
        report.errors = [str(f) for f in failures]
        report.rejected = [
            {"node_id": node_ids[d["client_id"] - 1], "stage": d["stage"], "reason": d["reason"]}
            for d in server.rejected
        ]
        for r in report.rejected:
            log(
                WARNING,
                "secagg: node %s rejected at stage %s: %s",
                r["node_id"],
                r["stage"],
                r["reason"],
            )
        report.seconds = time.perf_counter() - started

    def _dp_release(
        self,
        dp_round: _DpRound,
        aggregate: np.ndarray,
        global_arrays: list[np.ndarray],
        report: RoundReport,
    ) -> np.ndarray | None:
        """:meth:`_release_dp`, or ``None`` if the sum cannot be decoded: the round aborts,
        charged (logged, ``report.aborted`` says why)."""
        try:
            return self._release_dp(dp_round, aggregate, global_arrays, report)
        except ValueError as exc:
            report.survivors = []
            report.aborted = f"the unmasked sum could not be decoded: {exc}"
            self._abort_after_charge(report, dp_round)
            return None

    @staticmethod
    def _release_dp(
        dp_round: _DpRound,
        aggregate: np.ndarray,
        global_arrays: list[np.ndarray],
        report: RoundReport,
    ) -> np.ndarray:
        """Decode the noisy sum of the round (charged before its unmask requests) into the
        global parameters + the mean update. Raises ``ValueError`` if it cannot be decoded."""
        survivors = len(report.survivors)
        update = dp_round.encoding.decode(aggregate, survivors)
        if report.dp is not None:
            report.dp["expected_rmse"] = dp_round.encoding.expected_error(survivors)
        flat = np.concatenate([a.ravel().astype(np.float64) for a in global_arrays])
        return cast(np.ndarray, flat + update)

    @staticmethod
    def _feed(  # pylint: disable=too-many-arguments
        server: Any,
        replies: Any,
        node_ids: list[int],
        first: bool,
        first_reply: dict[int, RecordDict],
        failures: list[BaseException],
    ) -> set[int]:
        """Hand the replies to the server; returns the protocol ids that answered validly."""
        index = {nid: i + 1 for i, nid in enumerate(node_ids)}
        answered: set[int] = set()
        for reply in replies:
            cid = index.get(reply.metadata.src_node_id)
            if cid is None:
                continue
            if reply.has_error():
                failures.append(RuntimeError(f"node {node_ids[cid - 1]}: {reply.error.reason}"))
                continue
            record = rk.config_record(reply.content, rk.RECORD)
            payloads = record.get(rk.REPLIES) if record is not None else None
            if not isinstance(payloads, list) or not all(isinstance(p, bytes) for p in payloads):
                failures.append(RuntimeError(f"node {node_ids[cid - 1]}: no secagg replies"))
                continue
            ok = True
            for payload in payloads:
                try:
                    server.handle_message(0, cid, payload)
                except secagg.PeerMisbehaved as exc:
                    log(WARNING, "secagg: node %s dropped: %s", node_ids[cid - 1], exc.reason)
                    failures.append(exc)
                    ok = False
                    break
                except secagg.RoundAborted as exc:
                    failures.append(exc)
                    return answered
            if ok:
                answered.add(cid)
                if first:
                    first_reply[cid] = reply.content
        return answered
