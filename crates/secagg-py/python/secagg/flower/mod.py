"""The client side: a Flower mod that runs secagg's client under a ``ClientApp``.

Used like Flower's ``secaggplus_mod``::

    from secagg.flower import secagg_mod
    app = ClientApp(client_fn=client_fn, mods=[secagg_mod])

The first message of a round carries the strategy's ``FitIns`` and the protocol's RoundStart.
Everything about how the client encodes its parameters (clipping range and weight bound of
the weighted mean; or the DP mechanism, noise multiplier, clipping norm, placement and length)
is read from the round's configuration inside that RoundStart (``secagg.round_config``), which
the session id covers: a server that told one node other values than the others would make
that node's keys disagree with its neighbours', and the round fail, instead of giving it a
fine encoding and the others a scale that rounds to zero. No such value is taken from the
Flower record (a record that still carries one, as protocol version 1 did, is refused).

In a :class:`SecAggStrategy` round (Flower's Message API) the strategy's instructions come
with the protocol's masked-input request, not with its first message: the mod joins the key
exchange with a ``secagg.Client`` made without its input (``dim=``), and runs the train
handler only when the masked update is asked for; the update is encoded piece by piece from
views of the arrays' bytes and masked straight into the reply (``handle(message,
input=pieces)``), so neither the encoded update nor a copy of the model is held between
messages or whole.

In legacy rounds the mod lets the client train (``call_next``), turns the returned parameters and
``num_examples`` into one float vector and its weight, and hands both to the Rust client,
which clips, quantizes and masks them *here*, with the weight inside the masked vector. The
reply carries no parameters, no ``num_examples`` and (by default) no metrics: the server
learns only the weighted mean of the survivors. Later messages of the round are fed to the
same Rust client.

In a differentially private round (the server's ``SecAggWorkflow(dp=DpConfig(...))``) the
client instead hands the Rust client its *update*, returned parameters minus the global ones
it received, which it encodes with secagg's DP pipeline: L2 clipping, rotation, quantization
and, with distributed noise, this client's share of the noise, drawn from the OS CSPRNG. The
mean is unweighted: ``num_examples`` stays on the client and counts for nothing, and the fit
metrics are never sent, even with ``keep_metrics=True`` (in clear next to the masked vector
they would fall outside the DP guarantee). A client may set its own floor,
``make_secagg_mod(min_noise_multiplier=z, honest_clients=h)``: it then takes part only in
rounds with distributed noise of at least z, counted over h honest survivors when h is given,
and refuses (an error reply, before training) plain rounds, central-noise rounds and weaker
noise, whatever the server says. With ``dp_budget_epsilon=`` (which needs ``state_dir=`` and
``honest_clients=``) it also keeps its own privacy ledger in a file under ``state_dir`` (every
round at sampling rate 1, since it cannot check the server's sampling, and at the noise its
``honest_clients`` alone add) and refuses, before training, a round that would take it past
the budget; the round is charged before the masked update leaves the node. The ledger is never
kept in ``context.state``: Flower creates that empty for every run, so a server that started a
new run would have reset the budget.

In a validated round (the server's ``SecAggWorkflow(validate_l2=B)``, announced in the
RoundStart's configuration like the encoding) nothing changes on the client side: the Rust
client clips the parameter vector to L2 norm B, proves its norm with the masked upload, and
answers the binding challenge and any dispute or exclusion request in later messages. Such
rounds run the malicious model, so the mod needs an ``identity`` and a ``directory``.

The client states its own threat model: ``make_secagg_mod(threat="malicious",
assumed_corrupt=..., assumed_dropout=...)`` (the default once it has an ``identity``) refuses
rounds without the malicious-server defences, rounds whose (k, t, min_clients) fail the
planner's own check under its assumptions, rosters that list a node or a key twice, and
rounds without a PKI. Every node refuses a protocol round id it already took part in (the
ids are kept in a file under ``state_dir`` when given, across runs; otherwise in
``context.state``, which lasts one run).

Between messages the Rust client lives in ``context.state`` (the ``secagg.state``
ConfigRecord), saved with :meth:`secagg.Client.export_state` after every message and restored
from there, so a SuperNode may run the ClientApp in a fresh process per message, as with
Flower's ``secaggplus_mod`` (which also keeps its state there). Like Flower's, that state holds
the client's secrets for the rest of the round (key material, the shares its neighbours sent
it, and in legacy rounds its encoded update until it is masked): it is deleted when the client finishes or fails,
and replaced when the node's next round starts (a round the server aborted without telling the
client keeps its state until then). A process that handles a node's messages one after the
other also keeps the client in memory and skips the restore, but only while that client is
the one that saved the state (same round and save token).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Literal, TypeVar, cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.common.constant import ErrorCode
from flwr.common import FitRes, Parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore import log

import secagg

from . import records as rk
from .encoding import CHUNK, Encoding, EncodingError, array_view, check_binding

#: The protocol stage whose request carries a SecAggStrategy round's instructions.
MASKED_INPUT = "masked-input"

__all__ = ["make_secagg_mod", "secagg_mod"]

T = TypeVar("T")
ClientAppCallable = Callable[[Message, Context], Message]
Mod = Callable[[Message, Context, ClientAppCallable], Message]


@dataclass
class _Slot:
    round_key: str
    token: bytes
    client: secagg.Client


# The Rust client each node saved last in this process, by (run id, node id): spares a restore
# when the same process handles the node's next message. ``context.state`` is the truth: a
# cached client is used only if it saved the state found there (same round and token), so a
# process that missed some of the round's messages never answers with a stale client.
_CLIENTS: dict[tuple[int, int], _Slot] = {}


class SecAggClientError(RuntimeError):
    """The mod cannot go on with the round; the message says why and what to change."""


def make_secagg_mod(  # pylint: disable=too-many-arguments,too-many-locals,too-many-statements
    *,
    identity: bytes | Callable[[Context], bytes] | None = None,
    directory: Mapping[int, bytes] | None = None,
    threat: Literal["honest-but-curious", "malicious"] | None = None,
    assumed_corrupt: float | None = None,
    assumed_dropout: float | None = None,
    min_clients: int = 2,
    keep_metrics: bool = False,
    allow_plain: bool = False,
    seed: int | None = None,
    insecure_test_seed: bool = False,
    min_noise_multiplier: float | None = None,
    honest_clients: int | None = None,
    dp_budget_epsilon: float | None = None,
    dp_budget_delta: float = 1e-5,
    state_dir: str | os.PathLike[str] | Callable[[Context], str | os.PathLike[str]] | None = None,
) -> Mod:
    """A client mod; :data:`secagg_mod` is ``make_secagg_mod()``.

    Args:
        identity: malicious-server model: this node's Ed25519 secret key
            (:func:`secagg.keygen`), or a function of the node's ``Context`` that returns it
            (one ClientApp serves many nodes; e.g. read the file named in
            ``context.node_config``). Needs ``directory``.
        directory: malicious-server model: every node's public key by Flower node id, obtained
            out of band. The roster of a round is built from this directory, never from what
            the server sends, so a server cannot substitute keys; a directory that gives two
            nodes one key is refused, and so is a round whose node list names a node twice.
        threat: the server this client guards against: ``"malicious"`` (the default with an
            ``identity``, which it needs) refuses rounds without a PKI and the consistency
            check, and rounds whose parameters fail the planner's check under
            ``assumed_corrupt`` and ``assumed_dropout`` (e.g. ``min_clients`` below
            ⌈(1 - assumed_dropout)·n⌉: a round that could end with one honest client and its
            colluders); ``"honest-but-curious"`` (the default without one) follows the
            server's parameters unless assumptions are given.
        assumed_corrupt, assumed_dropout: this client's own assumptions (fractions of corrupt
            and dropped clients, default 0.05 each), checked against every round with the
            planner's own code (``secagg_core::params::check_round``).
        min_clients: refuse rounds that may finish with fewer survivors.
        keep_metrics: also send the fit metrics back in clear (off: they may leak what the
            masking hides). Never in DP rounds: metrics in clear are outside the DP guarantee,
            so they are dropped there (with a warning, logged once).
        allow_plain: also answer ``train`` messages that do not run secure aggregation (off:
            a server that skips the protocol would get this client's update in clear, so the
            mod refuses, as Flower's ``secaggplus_mod`` does).
        seed: reproducible client randomness, for tests only: every key a node generates is
            derived from it, its node id and the round, so whoever knows it knows them. Needs
            ``insecure_test_seed=True``. DP noise and rounding never use it: they always come
            from the OS CSPRNG.
        insecure_test_seed: allow ``seed`` (tests and examples only).
        min_noise_multiplier: this client's DP floor: answer only rounds with distributed DP
            noise of at least this noise multiplier, refusing rounds without DP, with central
            noise (the server would see the un-noised sum) or with less noise. ``None``
            (default): follow the server (DP rounds when it announces them).
        honest_clients: with ``min_noise_multiplier`` or ``dp_budget_epsilon`` (which requires
            it): the honest survivors h this client counts on. Each client adds 1/m of the noise variance, m being the survivors the
            round sizes the noise for (``DpConfig.min_survivors``); a malicious server that
            adds fake clients can announce a large m and shrink every honest share while the
            noise multiplier z still looks fine. With h the client refuses rounds unless one
            round with the noise of min(h, m) honest survivors, over the sensitivity its
            encoding guarantees, is as private as the Gaussian mechanism at
            ``min_noise_multiplier`` (at every integer Rényi order; about z·√(min(h, m)/m), a
            little less;
            the check of ``secagg client --dp-honest-clients``, :class:`secagg.dp.Floor`), and
            charges its budget for that round. ``None``: trust the round's m (floor only).
        dp_budget_epsilon: this client's own privacy budget (``secagg.dp.ClientLedger``, kept
            in ``state_dir``, which it requires, with ``honest_clients``): every round it
            contributes to is charged at sampling rate 1 with the noise of min(h, m) honest
            survivors only, composed with the rounds before, before its masked update leaves
            the node; a round that would take ε at ``dp_budget_delta`` past this budget is
            refused before training, and so are rounds without DP noise or with central
            noise. ``None`` (default): no client-side budget.
        dp_budget_delta: δ of the client's budget.
        state_dir: this node's own directory for what must outlive a Flower run (created if
            missing): its DP ledger (``secagg-dp-ledger.json``) and the protocol round ids it
            took part in (``secagg-round-history.json``), written atomically; a corrupt file
            is refused, never read as empty. A path, or a function of the node's ``Context``
            that returns one (one ClientApp serves many nodes in a simulation: give each
            node its own directory, e.g. from ``context.node_config``). Required with
            ``dp_budget_epsilon``: ``context.state`` starts empty in every run, so a ledger
            kept there would let a server reset the budget by starting a new run. ``None``:
            the round history lives in ``context.state`` (one run).
    """
    if min_noise_multiplier is not None and (
        isinstance(min_noise_multiplier, bool)
        or not isinstance(min_noise_multiplier, (int, float))
        or not min_noise_multiplier > 0
        or min_noise_multiplier == float("inf")
    ):
        raise ValueError(
            f"min_noise_multiplier must be a finite number > 0 or None, got "
            f"{min_noise_multiplier!r}"
        )
    if honest_clients is not None:
        if type(honest_clients) is not int or honest_clients < 1:
            raise ValueError(
                f"honest_clients must be an int ≥ 1 or None, got {honest_clients!r}"
            )
        if min_noise_multiplier is None and dp_budget_epsilon is None:
            raise ValueError(
                "honest_clients goes with min_noise_multiplier or dp_budget_epsilon"
            )
    floor = (
        None
        if min_noise_multiplier is None
        else secagg.dp.Floor(float(min_noise_multiplier), honest_clients=honest_clients)
    )
    if dp_budget_epsilon is not None:
        # Checked now: a ValueError for a bad budget or δ, or without honest_clients.
        secagg.dp.ClientLedger(dp_budget_epsilon, dp_budget_delta, honest_clients=honest_clients)
        if state_dir is None:
            raise ValueError(
                "dp_budget_epsilon needs state_dir=: this node's privacy ledger must live in a "
                "node-local file. Flower creates context.state empty for every run, so a "
                "ledger kept there would let a server reset the budget by starting a new run "
                "and average the noise away"
            )
    if state_dir is not None and not callable(state_dir):
        os.fspath(state_dir)  # a TypeError now for something that is not a path
    # DP rounds never send metrics; say so once if the caller asked for them.
    metrics_warned = False
    if (identity is None) != (directory is None):
        raise ValueError(
            "identity and directory go together: give both for the malicious-server model, "
            "or neither"
        )
    if threat is None:
        threat = "malicious" if identity is not None else "honest-but-curious"
    if threat not in ("honest-but-curious", "malicious"):
        raise ValueError(f"threat must be 'honest-but-curious' or 'malicious', got {threat!r}")
    if threat == "malicious" and identity is None:
        raise ValueError(
            "threat='malicious' needs identity= and directory= (this node's secret key and "
            "every node's public key, obtained out of band)"
        )
    if threat == "honest-but-curious" and identity is not None:
        raise ValueError(
            "a node with an identity takes part in malicious-model rounds only (it refuses "
            "rounds without a PKI): use threat='malicious', the default with an identity"
        )
    for name, value in (("assumed_corrupt", assumed_corrupt), ("assumed_dropout", assumed_dropout)):
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1
        ):
            raise ValueError(f"{name} must be a fraction in [0, 1) or None, got {value!r}")
    if type(min_clients) is not int or min_clients < 2:
        raise ValueError(f"min_clients must be an int ≥ 2, got {min_clients!r}")
    if seed is not None and not insecure_test_seed:
        raise ValueError(
            "seed= derives every key of every node from it: it is for tests only. Leave it "
            "out, or pass insecure_test_seed=True in a test"
        )
    if directory is not None:
        directory = dict(directory)
        _check_directory(directory)
    policy = {
        "threat": threat,
        "assumed_corrupt": None if assumed_corrupt is None else float(assumed_corrupt),
        "assumed_dropout": None if assumed_dropout is None else float(assumed_dropout),
        "min_clients": min_clients,
    }

    def secagg_mod_impl(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            # Evaluate messages go through the protocol only when a SecAggStrategy asks
            # (secure_evaluate); otherwise they are Flower's own, in clear.
            if (
                msg.metadata.message_type != MessageType.EVALUATE
                or rk.config_record(msg.content, rk.RECORD) is None
            ):
                return call_next(msg, ctxt)
        cfg = rk.config_record(msg.content, rk.RECORD)
        if cfg is None:
            if allow_plain:
                return call_next(msg, ctxt)
            raise SecAggClientError(
                "a train message without secure aggregation: this client sends its update only "
                "masked (use SecAggWorkflow on the server, or make_secagg_mod(allow_plain=True))"
            )
        round_key = _typed(cfg, rk.ROUND_KEY, str)
        messages = _bytes_list(cfg, rk.MESSAGES)
        key = (ctxt.run_id, ctxt.node_id)
        # Taken out of the cache until the state it leads to is saved: if anything below
        # raises, a later message restores from context.state instead.
        cached = _CLIENTS.pop(key, None)
        started: int | None = None
        if rk.CLIENT_ID in cfg:
            # A new round: whatever an earlier round left (it aborted unseen) goes now.
            ctxt.state.pop(rk.STATE_RECORD, None)
            out, client, config = _start_round(msg, ctxt, call_next, cfg, round_key, messages)
            if client is None:
                return out
            started = cast(int, config["round_id"])
            dp_round = config["dp"] is not None
            step = 0
            if _message_api(cfg):
                # Nothing of the handler's reply travels in clear: its arrays and announced
                # metrics are inside the masked vector, anything else stays here.
                content = RecordDict()
            else:
                content = _stripped_fit_reply(out, keep_metrics and not dp_round)
                if keep_metrics and dp_round:
                    _warn_metrics_dropped()
        else:
            client, step = _resume(ctxt, round_key, cached)
            content = RecordDict()
        deferred: Callable[[], object] | None = None
        if started is None and client.stage == "masked-input" and rk.CONTENT_AT not in cfg:
            if _message_api(cfg):
                # The instructions arrived with the masked-input request: train now.
                out, deferred = _deferred_input(msg, ctxt, call_next, cfg, client)
                if out is not None:
                    ctxt.state[rk.STATE_RECORD] = ConfigRecord(
                        {rk.ROUND_KEY: round_key, rk.STATE_FAILED: "the train handler failed"}
                    )
                    return out
        try:
            replies = []
            for m in messages:
                # With a budget the client charges its ledger (a file under state_dir) before
                # handle() returns the masked update.
                if deferred is not None and client.stage == "masked-input":
                    reply = client.handle(m, input=deferred())
                    deferred = None
                else:
                    reply = client.handle(m)
                if reply is None:
                    continue
                replies.append(reply)
        except (secagg.ProtocolError, ValueError) as exc:
            # The client stops for good: keep why, drop the secrets. Answer with an error
            # reply rather than raising: Flower's simulation engine discards the context of
            # a ClientApp that raises, which would bring the saved secrets back.
            ctxt.state[rk.STATE_RECORD] = ConfigRecord(
                {rk.ROUND_KEY: round_key, rk.STATE_FAILED: str(exc)}
            )
            return Message(
                Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}"),
                reply_to=msg,
            )
        if started is not None:
            # The round id is kept before the key advertisement leaves: never answered twice.
            history = _history(ctxt)
            history.begin(started)  # written to its file first, with a state_dir
            ctxt.state[rk.HISTORY_RECORD] = ConfigRecord(history.to_record())
        if client.finished or client.failed:
            ctxt.state.pop(rk.STATE_RECORD, None)
        else:
            token = secrets.token_bytes(16)
            ctxt.state[rk.STATE_RECORD] = ConfigRecord(
                {
                    rk.ROUND_KEY: round_key,
                    rk.STATE_STEP: step + 1,
                    rk.STATE_TOKEN: token,
                    rk.STATE_CLIENT: client.export_state(),
                }
            )
            _CLIENTS[key] = _Slot(round_key, token, client)
        content[rk.RECORD] = ConfigRecord({rk.REPLIES: replies})
        return Message(content, reply_to=msg)

    def _node_dir(ctxt: Context) -> str | None:
        """This node's state directory (created if missing), or None without one."""
        if state_dir is None:
            return None
        where = state_dir(ctxt) if callable(state_dir) else state_dir
        path = os.fspath(where)
        os.makedirs(path, exist_ok=True)
        return path

    def _ledger(ctxt: Context) -> secagg.dp.ClientLedger | None:
        """This node's own privacy ledger, read from its file under ``state_dir`` (None
        without a budget)."""
        if dp_budget_epsilon is None:
            return None
        path = os.path.join(cast(str, _node_dir(ctxt)), LEDGER_FILE)
        try:
            return secagg.dp.ClientLedger(
                dp_budget_epsilon, dp_budget_delta, honest_clients=honest_clients, path=path
            )
        except ValueError as exc:
            raise SecAggClientError(
                f"this node's privacy ledger {path!r} is unreadable (refusing to read it as "
                f"empty): {exc}"
            ) from exc

    def _history(ctxt: Context) -> secagg.RoundHistory:
        """The protocol round ids this node took part in: from its file under ``state_dir``,
        or from ``context.state`` without one."""
        directory = _node_dir(ctxt)
        if directory is None:
            return _context_history(ctxt)
        path = os.path.join(directory, HISTORY_FILE)
        try:
            return secagg.RoundHistory(path=path)
        except ValueError as exc:
            raise SecAggClientError(
                f"this node's round history {path!r} is unreadable (refusing to read it as "
                f"empty): {exc}"
            ) from exc

    def _warn_metrics_dropped() -> None:
        nonlocal metrics_warned
        if not metrics_warned:
            metrics_warned = True
            log(
                WARNING,
                "secagg: keep_metrics=True is ignored in DP rounds: fit metrics in clear are "
                "outside the DP guarantee, so this client never sends them there",
            )

    def _resume(ctxt: Context, round_key: str, cached: _Slot | None) -> tuple[secagg.Client, int]:
        """The node's client for ``round_key`` as saved in ``context.state``, and its step."""
        saved = rk.config_record(ctxt.state, rk.STATE_RECORD)
        saved_round = saved.get(rk.ROUND_KEY) if saved is not None else None
        if saved is None or saved_round is None:
            raise SecAggClientError(
                f"got a message for round {round_key}, but this node has no secagg state: it "
                "never started the round (it joined late, or the server skipped its first "
                "stage), or context.state was not kept between messages"
            )
        if saved_round != round_key:
            raise SecAggClientError(
                f"got a message for round {round_key}, but this node's secagg state belongs to "
                f"round {saved_round}: it never started round {round_key} (it joined late, or "
                "the server skipped its first stage)"
            )
        if rk.STATE_FAILED in saved:
            raise SecAggClientError(
                f"this node's secagg client stopped earlier in round {round_key} and answers "
                f"nothing more: {saved[rk.STATE_FAILED]}"
            )
        step, token, state = (
            saved.get(rk.STATE_STEP),
            saved.get(rk.STATE_TOKEN),
            saved.get(rk.STATE_CLIENT),
        )
        if type(step) is not int or not isinstance(token, bytes) or not isinstance(state, bytes):
            raise SecAggClientError(
                f"this node's secagg state for round {round_key} lacks its step, token or "
                "saved client"
            )
        if cached is not None and cached.round_key == round_key and cached.token == token:
            return cached.client, step
        # Only the key-sharing stage still draws randomness; a test seed stays reproducible.
        label = f"{round_key}:{step}"
        step_seed = None if seed is None else _derived_seed(seed, ctxt.node_id, label)
        ledger = _ledger(ctxt)
        try:
            return (
                secagg.Client.from_state(
                    state,
                    seed=step_seed,
                    insecure_test_seed=step_seed is not None,
                    dp_ledger=ledger,
                    no_dp_ledger=ledger is None,
                ),
                step,
            )
        except ValueError as exc:
            raise SecAggClientError(
                f"this node's saved secagg client for round {round_key} is unreadable: {exc}"
            ) from exc

    def _start_round(  # pylint: disable=too-many-arguments,too-many-locals
        msg: Message,
        ctxt: Context,
        call_next: ClientAppCallable,
        cfg: ConfigRecord,
        round_key: str,
        messages: list[bytes],
    ) -> tuple[Message, secagg.Client | None, dict[str, object]]:
        client_id = _typed(cfg, rk.CLIENT_ID, int)
        legacy = [k for k in rk.LEGACY_ENCODING_KEYS if k in cfg]
        if legacy:
            raise SecAggClientError(
                f"the server's '{rk.RECORD}' record carries {legacy}: this client takes how it "
                "encodes its parameters only from the round's configuration in the RoundStart "
                "(which the session id covers), never from per-node fields; upgrade the server "
                "to secagg's protocol version 2"
            )
        # The round's configuration as this client will check it: the only source of the
        # encoding (clip, weight bound, DP parameters), the round id and the client count.
        config = _round_start_config(messages)
        # Refused before training: nothing is computed for a round this client will not join.
        try:
            _history(ctxt).check(cast(int, config["round_id"]))
            if floor is not None:
                floor.check(config)
            ledger = _ledger(ctxt)
            if ledger is not None:
                ledger.check(config)
        except (secagg.ServerRefused, ValueError) as exc:
            raise SecAggClientError(f"refusing the round: {exc}") from exc
        dp = cast("dict[str, object] | None", config["dp"])
        encoding = None
        if rk.ENCODING in cfg:
            try:
                encoding = check_binding(_typed(cfg, rk.ENCODING, bytes), config)
            except EncodingError as exc:
                raise SecAggClientError(f"refusing the round: {exc}") from exc
            if encoding.message_type != msg.metadata.message_type:
                raise SecAggClientError(
                    f"refusing the round: its encoding is for {encoding.message_type} messages, "
                    f"this is a {msg.metadata.message_type} message"
                )
        elif config["input"] == "integers":
            raise SecAggClientError(
                "refusing the round: it sums unsigned integers, but this mod sends float model "
                "parameters (the server should create the round with a clipping range or DP)"
            )
        roster = None
        secret = None
        if directory is not None:
            roster = _roster_from_directory(cfg, config, ctxt.node_id, client_id, directory)
            secret = identity(ctxt) if callable(identity) else identity
        # The core's own checks of the round against this client's threat model, assumptions
        # and PKI, before training; the client built below makes them again.
        try:
            secagg.check_round_start(
                messages[0], client_id=client_id, identity=secret, roster=roster, **policy
            )
        except (secagg.ProtocolError, ValueError) as exc:
            raise SecAggClientError(f"refusing the round: {exc}") from exc
        client_seed = None if seed is None else _derived_seed(seed, ctxt.node_id, round_key)
        common = {
            "identity": secret,
            "roster": roster,
            "seed": client_seed,
            "insecure_test_seed": client_seed is not None,
            **policy,
        }
        if _message_api(cfg) and rk.CONTENT_AT in cfg:
            # The instructions come with the masked-input request: join the key exchange
            # with a client that takes its vector then (nothing of the model is computed or
            # kept before).
            if cfg[rk.CONTENT_AT] != MASKED_INPUT:
                raise SecAggClientError(
                    f"refusing the round: its instructions come at stage {cfg[rk.CONTENT_AT]!r}; "
                    f"this client takes them at {MASKED_INPUT!r}"
                )
            if encoding is not None:
                values = encoding.dim
            elif dp is not None:
                values = cast(int, dp["dim"])
            else:
                raise SecAggClientError(
                    f"refusing the round: '{rk.RECORD}.{rk.ARRAYS}' without DP or an encoding"
                )
            deferred = secagg.Client(
                client_id, dim=values, dp_ledger=ledger if dp is not None else None, **common
            )
            return Message(RecordDict(), reply_to=msg), deferred, config
        if _message_api(cfg):
            # A SecAggStrategy round: the handler sees the strategy's instructions only.
            del msg.content[rk.RECORD]
            out = call_next(msg, ctxt)
            if out.has_error():
                return out, None, config
            # The handler's reply is encoded, then dropped: only the masked vector leaves, and
            # a large model is not held twice while the Rust client works.
            done = Message(RecordDict(), reply_to=msg)
            try:
                if encoding is not None:
                    vector = _message_api_vector(encoding, msg, out)
                    del out
                    return done, secagg.Client(client_id, vector, **common), config
                if dp is None:
                    raise SecAggClientError(
                        f"refusing the round: '{rk.RECORD}.{rk.ARRAYS}' without DP or an encoding"
                    )
                update = _message_api_dp_update(_typed(cfg, rk.ARRAYS, str), msg, out)
                del out
            except EncodingError as exc:
                raise SecAggClientError(str(exc)) from exc
            if update.size != dp["dim"]:
                raise SecAggClientError(
                    f"the round averages updates of {dp['dim']} values; this client's has "
                    f"{update.size}"
                )
            return done, secagg.Client(client_id, update, dp_ledger=ledger, **common), config
        out = call_next(msg, ctxt)
        if out.has_error():
            return out, None, config
        fitres = compat.recorddict_to_fitres(out.content, keep_input=True)
        vector = _flatten(parameters_to_ndarrays(fitres.parameters))
        if dp is not None:
            update = _dp_update(msg, vector, cast(int, dp["dim"]))
            client = secagg.Client(client_id, update, dp_ledger=ledger, **common)
            return out, client, config
        weight = fitres.num_examples
        max_weight = cast(int, config["max_weight"])
        if not isinstance(weight, int) or weight < 0:
            raise SecAggClientError(f"num_examples must be a non-negative int, got {weight!r}")
        if weight > max_weight:
            raise SecAggClientError(
                f"num_examples {weight} exceeds the round's max_weight {max_weight}: raise "
                "max_weight in SecAggWorkflow (or send fewer examples as the weight)"
            )
        return out, secagg.Client(client_id, vector, weight=weight, **common), config

    return secagg_mod_impl


#: The mod for the honest-but-curious server model, with OS randomness.
secagg_mod: Mod = make_secagg_mod()


def _typed(cfg: ConfigRecord, key: str, kind: type[T]) -> T:
    if key not in cfg:
        raise SecAggClientError(f"the server's '{rk.RECORD}' record lacks '{key}'")
    value = cfg[key]
    # bool is an int in Python; a bool here is a malformed record.
    if type(value) is not kind:  # pylint: disable=unidiomatic-typecheck
        raise SecAggClientError(
            f"'{rk.RECORD}.{key}' must be {kind.__name__}, got {type(value).__name__}"
        )
    return cast(T, value)


#: The files a node keeps under ``make_secagg_mod(state_dir=...)``.
LEDGER_FILE = "secagg-dp-ledger.json"
HISTORY_FILE = "secagg-round-history.json"


def _context_history(ctxt: Context) -> secagg.RoundHistory:
    """The protocol round ids this node took part in, from ``context.state`` (one run)."""
    record = rk.config_record(ctxt.state, rk.HISTORY_RECORD)
    if record is None:
        return secagg.RoundHistory()
    try:
        return secagg.RoundHistory.from_record(dict(record))
    except ValueError as exc:
        raise SecAggClientError(
            f"this node's round history '{rk.HISTORY_RECORD}' in context.state is unreadable "
            f"(refusing to read it as empty): {exc}"
        ) from exc


def _check_directory(directory: dict[int, bytes]) -> None:
    """Refuses a key directory that gives two nodes one key (one party at two ids could be
    several neighbours of one client)."""
    owner: dict[bytes, int] = {}
    for node, key in directory.items():
        if type(node) is not int or not isinstance(key, bytes) or len(key) != 32:
            raise ValueError(
                "directory must map Flower node ids (int) to 32-byte public keys "
                f"(secagg.keygen), got {node!r}: {key!r}"
            )
        if key in owner:
            raise ValueError(
                f"directory gives nodes {owner[key]} and {node} the same public key: one party "
                "at two ids could be several neighbours of one client"
            )
        owner[key] = node


def _round_start_config(messages: list[bytes]) -> dict[str, object]:
    """The round's configuration from the RoundStart the client is about to answer."""
    if not messages:
        raise SecAggClientError("the first message of the round carries no RoundStart")
    try:
        return secagg.round_config(messages[0])
    except (secagg.ServerRefused, secagg.RoundAborted, ValueError) as exc:
        raise SecAggClientError(
            f"the round's first message is not a usable RoundStart: {exc}"
        ) from exc


def _dp_update(msg: Message, vector: np.ndarray, dim: int) -> np.ndarray:
    """The client's update for a DP round: returned minus received parameters."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    received = _flatten(parameters_to_ndarrays(fitins.parameters))
    if received.size != vector.size:
        raise SecAggClientError(
            f"the client returned {vector.size} parameters for a model of {received.size}"
        )
    if vector.size != dim:
        raise SecAggClientError(
            f"the round averages updates of {dim} values; this client's has {vector.size}"
        )
    return cast(np.ndarray, vector.astype(np.float64) - received.astype(np.float64))


def _message_api(cfg: ConfigRecord) -> bool:
    """Whether a round comes from :class:`SecAggStrategy` (Flower's Message API)."""
    return rk.ENCODING in cfg or rk.ARRAYS in cfg


def _message_api_vector(encoding: Encoding, msg: Message, out: Message) -> np.ndarray:
    """The whole integer vector of a Message-API round (a client that holds it until its
    masked input is asked for): :func:`_message_api_chunks` joined."""
    return encoding.join(_message_api_chunks(encoding, msg, out))


def _replied_arrays(
    key: str | None, msg: Message, out: Message
) -> tuple[ArrayRecord | None, ArrayRecord | None]:
    """The ArrayRecord the strategy sent under ``key`` and the handler's (under ``key``, or
    its only one)."""
    if key is None:
        return None, None
    received = msg.content.array_records.get(key)
    returned = out.content.array_records.get(key)
    if returned is None and len(out.content.array_records) == 1:
        returned = next(iter(out.content.array_records.values()))
    return received, returned


def _deferred_input(
    msg: Message,
    ctxt: Context,
    call_next: ClientAppCallable,
    cfg: ConfigRecord,
    client: secagg.Client,
) -> tuple[Message | None, Callable[[], object] | None]:
    """A deferred Message-API round at its masked-input request: runs the train handler on
    the strategy's instructions and returns (its error reply, None) or (None, a function
    giving the client's input as pieces: the encoded update never exists whole)."""
    if client.config is None:
        raise SecAggClientError("a client at the masked-input stage without its round")
    try:
        encoding = (
            check_binding(_typed(cfg, rk.ENCODING, bytes), client.config)
            if rk.ENCODING in cfg
            else None
        )
    except EncodingError as exc:
        raise SecAggClientError(f"refusing the round: {exc}") from exc
    if encoding is not None and encoding.message_type != msg.metadata.message_type:
        raise SecAggClientError(
            f"refusing the round: its encoding is for {encoding.message_type} messages, "
            f"this is a {msg.metadata.message_type} message"
        )
    arrays_key = None if encoding is not None else _typed(cfg, rk.ARRAYS, str)
    del msg.content[rk.RECORD]
    out = call_next(msg, ctxt)
    if out.has_error():
        return out, None
    try:
        if encoding is not None:
            chunks = _message_api_chunks(encoding, msg, out)
        else:
            chunks = _message_api_dp_chunks(cast(str, arrays_key), msg, out)
    except EncodingError as exc:
        raise SecAggClientError(str(exc)) from exc
    return None, lambda: chunks


def _message_api_chunks(encoding: Encoding, msg: Message, out: Message) -> Iterator[np.ndarray]:
    """The encoded vector of a Message-API round, in pieces (see ``Encoding.encode_chunks``)."""
    received, returned = _replied_arrays(encoding.arrays_key, msg, out)
    metrics = next(iter(out.content.metric_records.values()), MetricRecord())
    chunks, clipped, _ = encoding.encode_chunks(received, returned, metrics)
    if clipped:
        # Only this node learns its own count; the server sees the total over the survivors.
        log(INFO, "secagg: %s values of this node's update were clipped", clipped)
    return chunks


def _message_api_dp_chunks(key: str, msg: Message, out: Message) -> Iterator[np.ndarray]:
    """A DP round's update (returned minus received float arrays, in the order of the
    received ArrayRecord) in float64 pieces, read through views of the arrays' bytes."""
    received, returned = _replied_arrays(key, msg, out)
    if received is None or returned is None:
        raise EncodingError(f"a DP round averages the arrays of '{key}': the message has none")
    if list(returned.keys()) != list(received.keys()):
        raise EncodingError(
            f"the returned arrays {list(returned.keys())} are not the received "
            f"{list(received.keys())}"
        )
    pairs = []
    for name in received.keys():
        old, new = array_view(received[name]), array_view(returned[name])
        if old.dtype.kind != "f":
            raise EncodingError(
                f"a DP round averages float arrays only; {name!r} is {old.dtype} (its update "
                "would need its own sensitivity)"
            )
        if old.shape != new.shape:
            raise EncodingError(f"array {name!r}: received {old.shape}, returned {new.shape}")
        pairs.append((new.reshape(-1), old.reshape(-1)))

    def pieces() -> Iterator[np.ndarray]:
        for new, old in pairs:
            for lo in range(0, new.size, CHUNK):
                yield np.subtract(new[lo : lo + CHUNK], old[lo : lo + CHUNK], dtype=np.float64)

    return pieces()


def _message_api_dp_update(key: str, msg: Message, out: Message) -> np.ndarray:
    """A DP round's whole update (:func:`_message_api_dp_chunks` joined), for a client that
    holds it until its masked input is asked for."""
    pieces = list(_message_api_dp_chunks(key, msg, out))
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.float64)


def _bytes_list(cfg: ConfigRecord, key: str) -> list[bytes]:
    value = cfg.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise SecAggClientError(f"'{rk.RECORD}.{key}' must be a list of bytes")
    return cast(list[bytes], value)


def _roster_from_directory(
    cfg: ConfigRecord,
    config: dict[str, object],
    node_id: int,
    client_id: int,
    directory: Mapping[int, bytes],
) -> list[bytes]:
    raw = cfg.get(rk.ROSTER_NODES)
    if not isinstance(raw, list) or not all(type(n) is int for n in raw):
        raise SecAggClientError(
            f"a malicious-model round needs '{rk.RECORD}.{rk.ROSTER_NODES}' (list of node ids)"
        )
    nodes = cast(list[int], raw)
    if len(nodes) != config["clients"]:
        raise SecAggClientError(
            f"the round's node list names {len(nodes)} nodes for a round of {config['clients']} "
            "clients"
        )
    repeated = sorted({n for n in nodes if nodes.count(n) > 1})
    if repeated:
        raise SecAggClientError(
            f"refusing the round: its node list names nodes {repeated[:5]} more than once (one "
            "party at several ids could be several neighbours of one client)"
        )
    if not 1 <= client_id <= len(nodes) or nodes[client_id - 1] != node_id:
        raise SecAggClientError(
            f"the server gave this node ({node_id}) protocol id {client_id}, which the "
            "round's node list does not map to it"
        )
    unknown = [n for n in nodes if n not in directory]
    if unknown:
        raise SecAggClientError(
            f"nodes {unknown[:5]} are not in this client's key directory: refusing a roster "
            "it cannot check"
        )
    # Keys are distinct: the directory was checked when the mod was made.
    return [directory[n] for n in nodes]


def _flatten(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        raise SecAggClientError("the client returned no parameters to aggregate")
    if not all(np.issubdtype(a.dtype, np.floating) for a in arrays):
        kinds = sorted({str(a.dtype) for a in arrays})
        raise SecAggClientError(f"secure mean needs float parameters, got dtypes {kinds}")
    dtype = np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64
    return np.concatenate([np.ravel(a).astype(dtype, copy=False) for a in arrays])


def _stripped_fit_reply(out: Message, keep_metrics: bool) -> RecordDict:
    fitres = compat.recorddict_to_fitres(out.content, keep_input=True)
    stripped = FitRes(
        status=fitres.status,
        parameters=Parameters(tensors=[], tensor_type=""),
        num_examples=0,
        metrics=fitres.metrics if keep_metrics else {},
    )
    return compat.fitres_to_recorddict(stripped, keep_input=True)


def _derived_seed(seed: int, node_id: int, label: str) -> bytes:
    return hashlib.sha256(f"secagg.flower:{seed}:{node_id}:{label}".encode()).digest()

