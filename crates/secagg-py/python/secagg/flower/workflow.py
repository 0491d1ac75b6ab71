"""The server side: a Flower fit workflow that runs secagg's server over the Grid.

Used like Flower's ``SecAggPlusWorkflow``::

    from secagg.flower import SecAggWorkflow
    fit = SecAggWorkflow(num_shares=21, reconstruction_threshold=11)
    workflow = DefaultWorkflow(fit_workflow=fit)

Each exchange with the clients is one ``grid.send_and_receive``: the workflow sends every
client still in the round the protocol messages the Rust server queued for it, feeds the
replies back, and tells the server which clients did not answer (they drop out at that
stage). The Rust server decides everything else: the neighbour graph, who survives, when the
round aborts, and the released weighted mean, which is passed to ``Strategy.aggregate_fit``
as every survivor's parameters (as ``SecAggPlusWorkflow`` does).

With ``dp=DpConfig(...)`` the rounds release a differentially private *unweighted* mean
update instead (see :mod:`secagg.flower.dp`): the global parameters plus that mean are passed
to ``aggregate_fit``, and each round is charged to the privacy ledger in ``context.state``
before its unmask requests go out, at sampling rate 1.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from logging import INFO
from typing import Any, Literal, cast

import numpy as np
from flwr.app import Context, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import FitRes, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp.grid import Grid
from flwr.supercore import log

from .dp import DpConfig, save_ledger
from .driver import ProtocolDriver, RoundReport, Threat, protocol_args

__all__ = ["DpConfig", "RoundReport", "SecAggWorkflow"]


class SecAggWorkflow(ProtocolDriver):
    """Secure weighted mean of the clients' parameters with secagg (SecAgg / SecAgg+ in Rust).

    Same constructor style as Flower's ``SecAggPlusWorkflow``. Pair it with
    :data:`secagg.flower.secagg_mod` on the clients.

    Args:
        num_shares: Flower's meaning: shares per client *including itself*, so neighbours
            k = ``num_shares`` - 1 (must be odd, as Flower recommends; 21 = 20 neighbours). A
            float is a fraction of the sampled clients. ``None`` (default): k and t chosen
            from the threat model (recommended).
        reconstruction_threshold: shares needed to rebuild a secret, t; a float is a
            fraction of ``num_shares``. ``None``: from the threat model.
        degree: neighbours per client, k (overrides ``num_shares``).
        max_weight: the largest ``num_examples`` a client may send (it travels masked).
        clipping_range: parameters are clipped to [-clipping_range, clipping_range].
        bits: modulus 2^bits of the masked vectors; the fixed-point scale is the finest that
            cannot overflow with the sampled clients, ``max_weight`` and ``clipping_range``.
        timeout: seconds each exchange waits for replies (``None``: until all answer).
        threat: ``"honest-but-curious"`` or ``"malicious"`` (needs ``directory``, and clients
            built with ``make_secagg_mod(identity=..., directory=...)``).
        directory: malicious model: every node's Ed25519 public key by node id.
        assumed_corrupt, assumed_dropout: fractions used to choose and check (k, t).
        accept_weaker_params: allow explicit (k, t) weaker than the threat model needs
            (for comparisons with Flower's defaults); a warning is logged.
        graph: ``"auto"``, ``"harary"`` or ``"complete"``.
        prg: ``"aes"`` or ``"chacha"``.
        seed: reproducible public round randomness for tests; default: the OS.
        dp: differentially private rounds (:class:`DpConfig`): each client clips its update
            (returned parameters minus the global ones) to ``clipping_norm`` in L2 and, with
            distributed noise, adds its share of the noise before masking, so the server only
            ever unmasks a noisy sum. The released mean is *unweighted* (``num_examples`` is
            ignored: a weight would change the sensitivity); ``clipping_range`` and
            ``max_weight`` do not apply. ε is accounted in a privacy ledger in
            ``context.state`` (record ``secagg.dp.ledger``), every round at sampling rate 1
            (the server sees who takes part: ``DpConfig`` refuses any other rate); a round
            that would take it past ``epsilon_budget`` is refused before any message is
            sent: it is skipped (logged at ERROR, the model stays as it is,
            ``RoundReport.aborted`` says why), as Flower skips a fit round without
            clients, and so is every later round that would not fit; so is a round that
            sampled fewer clients than ``min_survivors``. The round is charged before its
            unmask requests are sent (before the server could compute the sum): the ledger
            is read again then and only this round's cost added (other charges made
            meanwhile stay). If that would now exceed the budget (the ledger was charged
            elsewhere while the round ran) the round is refused there: no unmask request
            is sent, nothing is released or charged. A round that aborts after its charge
            stays charged (``RoundReport.charged``). A malformed or inconsistent ledger,
            or one that cannot be written, raises (``ValueError`` for the former) and
            stops the round before any unmask request. Pair it with ``secagg_mod`` (or
            ``make_secagg_mod(
            min_noise_multiplier=..., honest_clients=...)`` for clients that set their own
            floor); clients never send fit metrics in DP rounds.
        validate_l2: validated inputs (docs/VALIDATION.md): every client proves in zero
            knowledge that its parameter vector, clipped to L2 norm ``validate_l2`` (the
            honest clients' encoding does it), is within that norm, with the validated
            fixed-point scale; a client whose proof fails, that masked another vector than it
            proved, or whose masks contradict its commitments is named and excluded, and the
            round releases the weighted mean of the others. ``clipping_range`` does not apply
            (the round's ``clip`` is the L2 bound). Needs ``threat="malicious"`` with a
            ``directory`` (validated rounds run on the PKI); not with ``dp``. Rejected
            clients are in ``RoundReport.rejected`` (``{"node_id", "stage", "reason"}``,
            also among ``dropouts``), and logged. Choose it above the parameters' norm, or
            honest updates are shrunk to it.

    Raises:
        ValueError: inconsistent parameters, at construction or when a round's sampled
            clients make them unsafe; the message says what to change.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        num_shares: int | float | None = None,
        reconstruction_threshold: int | float | None = None,
        *,
        degree: int | None = None,
        max_weight: int = 1000,
        clipping_range: float = 8.0,
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
        validate_l2: float | None = None,
    ) -> None:
        if not np.isfinite(clipping_range) or clipping_range <= 0:
            raise ValueError(f"clipping_range must be a positive number, got {clipping_range}")
        if validate_l2 is not None:
            if isinstance(validate_l2, bool) or not isinstance(validate_l2, (int, float)):
                raise ValueError(f"validate_l2 must be a number (the L2 bound), got {validate_l2!r}")
            if not np.isfinite(validate_l2) or validate_l2 <= 0:
                raise ValueError(f"validate_l2 must be a positive number, got {validate_l2}")
            if dp is not None:
                raise ValueError(
                    "validate_l2 with dp is refused for now (VALIDATION.md §12): a client's DP "
                    "noise would be inside the validated vector, so a cheater could send signal "
                    "instead of noise"
                )
            if threat != "malicious":
                raise ValueError(
                    "validate_l2 needs threat='malicious' with a directory of the nodes' public "
                    "keys (validated rounds run the malicious-server model with a PKI: "
                    "VALIDATION.md §21.1 D36)"
                )
        super().__init__(**protocol_args(locals()))
        self.clipping_range = float(clipping_range)
        self.validate_l2 = None if validate_l2 is None else float(validate_l2)

    @staticmethod
    def _save_ledger(*args: Any) -> None:
        # Looked up in this module at call time (tests replace it here).
        save_ledger(*args)

    def _encoding(self) -> dict[str, object]:
        """How clients encode their parameters: the round's configuration carries it."""
        if self.dp is not None:
            # An unsigned sum of the clients' DP encodings (padded to a power of two); the
            # round aborts below the survivors the noise shares are sized for.
            return self.dp.server_kwargs()
        if self.validate_l2 is not None:
            # Validated float rounds: the clip is the L2 bound (VALIDATION.md §5.4).
            return {
                "clip": self.validate_l2,
                "max_weight": self.max_weight,
                "validate_l2": self.validate_l2,
            }
        return {"clip": self.clipping_range, "max_weight": self.max_weight}

    # -- the round --------------------------------------------------------------------------

    def __call__(self, grid: Grid, context: Context) -> None:
        """Run one secure fit round (called by ``DefaultWorkflow`` once per round)."""
        if not isinstance(context, LegacyContext):
            raise TypeError(f"Expect a LegacyContext, but get {type(context).__name__}.")
        started = time.perf_counter()
        cfg = context.state.config_records[MAIN_CONFIGS_RECORD]
        current_round = cast(int, cfg[WorkflowKey.CURRENT_ROUND])
        parameters = compat.arrayrecord_to_parameters(
            context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
        )
        proxy_fitins = context.strategy.configure_fit(
            current_round, parameters, context.client_manager
        )
        if not proxy_fitins:
            log(INFO, "configure_fit: no clients selected, cancel")
            return
        fitins = {proxy.node_id: fi for proxy, fi in proxy_fitins}
        proxies = {proxy.node_id: proxy for proxy, _ in proxy_fitins}
        node_ids = sorted(fitins)  # protocol id = position + 1
        n = len(node_ids)
        report = RoundReport(server_round=current_round, sampled=n)
        self.reports.append(report)
        if self._skipped(report, "min_fit_clients"):
            return

        global_arrays = parameters_to_ndarrays(parameters)
        dim = int(sum(a.size for a in global_arrays))
        roster = self._roster(node_ids)
        round_id = self._round_id(current_round)
        server = self._new_server(n, dim, round_id, roster, self._encoding())
        report.k, report.t = server.k, server.t
        dp_round = (
            self._dp_round(context.state, server, dim, report) if self.dp is not None else None
        )
        if report.aborted is not None:
            return
        self._announce(server, report, dim)
        refused, first_reply, failures = self._exchange(
            grid,
            context.state,
            server,
            node_ids,
            lambda nid: compat.fitins_to_recorddict(fitins[nid], keep_input=True),
            message_type=MessageType.TRAIN,
            group_id=str(current_round),
            round_key=f"{current_round}:{round_id}",
            roster=roster,
            report=report,
            dp_round=dp_round,
            started=started,
        )
        if refused:
            return  # refused at the charge: logged there, no unmask request was sent
        mean = self._released_sum(server, node_ids, report, dp_round)
        if mean is not None and dp_round is not None:
            mean = self._dp_release(dp_round, mean, global_arrays, report)
        if mean is None:
            return
        self._log_released(report)
        self._aggregate(
            context, current_round, mean, global_arrays, report, proxies, first_reply, failures
        )

    def _aggregate(  # pylint: disable=too-many-arguments
        self,
        context: LegacyContext,
        current_round: int,
        mean: np.ndarray,
        global_arrays: list[np.ndarray],
        report: RoundReport,
        proxies: dict[int, ClientProxy],
        first_reply: dict[int, RecordDict],
        failures: list[BaseException],
    ) -> None:
        arrays, offset = [], 0
        for a in global_arrays:
            arrays.append(
                mean[offset : offset + a.size].reshape(a.shape).astype(a.dtype, copy=False)
            )
            offset += a.size
        released = ndarrays_to_parameters(arrays)
        index = {nid: i + 1 for i, nid in enumerate(sorted(proxies))}
        results: list[tuple[ClientProxy, FitRes]] = []
        for nid in report.survivors:
            fitres = compat.recorddict_to_fitres(first_reply[index[nid]], keep_input=True)
            # Every survivor "returns" the released mean, with equal weight: the true weights
            # were inside the masked vectors and are already in the mean.
            fitres.parameters = released
            fitres.num_examples = 1
            results.append((proxies[nid], fitres))
        log(INFO, "aggregate_fit: received %s results and %s failures", len(results), len(failures))
        parameters_aggregated, metrics_aggregated = context.strategy.aggregate_fit(
            current_round,
            results,
            failures,  # type: ignore[arg-type]
        )
        if parameters_aggregated:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
                parameters_aggregated, True
            )
            context.history.add_metrics_distributed_fit(
                server_round=current_round, metrics=metrics_aggregated
            )
