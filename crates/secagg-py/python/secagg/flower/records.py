"""The names under which secagg's protocol bytes travel inside Flower messages.

One :class:`flwr.app.ConfigRecord` named :data:`RECORD` rides in every ``train`` message of a
secure round. The server puts in it the protocol messages the Rust server queued for that
client, in order; the client answers with the protocol messages its Rust state machine
returned. Everything secret inside those bytes is encrypted end to end between clients; the
Flower records only carry them.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, RecordDict

#: ConfigRecord that carries secagg's protocol messages in both directions.
RECORD = "secagg"
#: ConfigRecord (in ``context.state``) where the client mod keeps its round between messages:
#: :data:`ROUND_KEY`, then either :data:`STATE_STEP`, :data:`STATE_TOKEN` and
#: :data:`STATE_CLIENT`, or :data:`STATE_FAILED`.
STATE_RECORD = "secagg.state"
#: state: how many of the round's train messages the mod has handled for this node (int).
STATE_STEP = "step"
#: state: random name of this save; a client cached in memory is used only if it made it (bytes).
STATE_TOKEN = "token"
#: state: the Rust client saved by :meth:`secagg.Client.export_state` (bytes; holds secrets).
STATE_CLIENT = "client"
#: state: why the client stopped in this round (str), kept instead of its secrets.
STATE_FAILED = "failed"

#: server -> client: the protocol messages for this client, in order (list[bytes]).
MESSAGES = "messages"
#: server -> client: the client's 1-based protocol id in this round (int).
CLIENT_ID = "client_id"
#: server -> client: identifies the round across stages: "<flower round>:<protocol round id>".
ROUND_KEY = "round"
#: server -> client, first message only, malicious model: the Flower node ids of the round's
#: clients in protocol-id order; each client builds the roster from its own key directory.
ROSTER_NODES = "roster_nodes"
#: server -> client, first message only, :class:`SecAggStrategy` rounds without DP: the round's
#: encoding (:class:`secagg.flower.encoding.Encoding`, canonical JSON bytes), whose hash is the
#: round seed (so the session id covers it).
ENCODING = "encoding"
#: server -> client, first message only, :class:`SecAggStrategy` DP rounds: the key of the
#: ArrayRecord whose float arrays' update is averaged (str).
ARRAYS = "arrays"
#: server -> client, first message only, :class:`SecAggStrategy` rounds: the protocol stage
#: whose request carries the strategy's instructions ("masked-input"), with :data:`ENCODING`
#: or :data:`ARRAYS` again. The client joins the key exchange without them and trains only
#: when its masked update is asked for: nothing of the model is kept between messages, and a
#: client that drops out before never trains (str).
CONTENT_AT = "content_at"
#: client -> server: the protocol replies (list[bytes]).
REPLIES = "replies"

# How clients encode their parameters (clipping range, weight bound; DP mechanism, noise
# multiplier, clipping norm, placement, length) is not a field of this record: it is in the
# protocol's RoundStart (``secagg.round_config(messages[0])``), inside the round's
# configuration that the session id covers, so the server cannot tell one client other
# values than the others. Protocol version 1 sent them here; a client refuses a record that
# still carries any of these keys.
LEGACY_ENCODING_KEYS = (
    "clip",
    "max_weight",
    "dp.noise",
    "dp.noise_multiplier",
    "dp.clipping_norm",
    "dp.central",
    "dp.dim",
)

#: ConfigRecord (in a node's ``context.state``) listing the protocol round ids the node took
#: part in (``secagg.RoundHistory.to_record``: ``version``, ``rounds`` as decimal strings); a
#: round id in it is refused before training. With ``make_secagg_mod(state_dir=...)`` the
#: node's file there is the truth (this record is only a copy: it starts empty every run).
HISTORY_RECORD = "secagg.rounds"

#: No longer written: the mod keeps a node's privacy ledger in ``secagg-dp-ledger.json``
#: under its ``state_dir`` (``make_secagg_mod(dp_budget_epsilon=..., state_dir=...)``), since
#: Flower creates ``context.state`` empty for every run and a ledger there would be reset by a
#: new run. The name stays so that tests can check nothing is kept here.
CLIENT_LEDGER_RECORD = "secagg.dp.client_ledger"

#: ConfigRecord (in the ServerApp's ``context.state``) holding the privacy ledger of
#: :class:`SecAggWorkflow`'s DP rounds: :data:`LEDGER_ORDERS`, :data:`LEDGER_RDP`,
#: :data:`LEDGER_ROUNDS`, :data:`LEDGER_EPSILON`, :data:`LEDGER_DELTA`. Copy it out after a run
#: and back in before the next to keep charging the same population.
LEDGER_RECORD = "secagg.dp.ledger"
#: ledger: the Rényi orders (list[float]).
LEDGER_ORDERS = "orders"
#: ledger: the composed RDP of every charged round (charged before its unmask requests, at
#: sampling rate 1), one value per order (list[float]).
LEDGER_RDP = "rdp"
#: ledger: the server rounds charged, in order (list[int]).
LEDGER_ROUNDS = "rounds"
#: ledger: ε after the last charged round at :data:`LEDGER_DELTA` (float; informative, the
#: RDP curve is the truth).
LEDGER_EPSILON = "epsilon"
#: ledger: the δ of :data:`LEDGER_EPSILON` (float).
LEDGER_DELTA = "delta"


def config_record(records: RecordDict, key: str) -> ConfigRecord | None:
    """The ConfigRecord under ``key``, or ``None``: one lookup, where Flower's
    ``records.config_records`` builds a checked copy of every ConfigRecord at each access."""
    record = records.get(key)
    return record if isinstance(record, ConfigRecord) else None
