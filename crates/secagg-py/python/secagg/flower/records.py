"""The names under which secagg's protocol bytes travel inside Flower messages.

One :class:`flwr.app.ConfigRecord` named :data:`RECORD` rides in every ``train`` message of a
secure round. The server puts in it the protocol messages the Rust server queued for that
client, in order; the client answers with the protocol messages its Rust state machine
returned. Everything secret inside those bytes is encrypted end to end between clients; the
Flower records only carry them.
"""

from __future__ import annotations

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
#: server -> client, first message only: the public clipping range of the float encoding.
CLIP = "clip"
#: server -> client, first message only: the largest weight (num_examples) a client may send.
MAX_WEIGHT = "max_weight"
#: server -> client, first message only, malicious model: the Flower node ids of the round's
#: clients in protocol-id order; each client builds the roster from its own key directory.
ROSTER_NODES = "roster_nodes"
#: client -> server: the protocol replies (list[bytes]).
REPLIES = "replies"

# Differential privacy (``SecAggWorkflow(dp=DpConfig(...))``): the public parameters ride in
# the first message of a round, beside the protocol's RoundStart. Clients derive the whole
# encoding (scale, rotation, noise share) from them and the RoundStart they are about to
# answer, never from anything else the server says. Their presence makes the round a DP round
# (then CLIP and MAX_WEIGHT are absent: the mean is unweighted and clipped in L2).

#: server -> client, first message only: "ddg" (distributed discrete Gaussian) or "skellam".
DP_NOISE = "dp.noise"
#: server -> client: noise stddev of the sum over the clipping norm (float).
DP_NOISE_MULTIPLIER = "dp.noise_multiplier"
#: server -> client: L2 clipping norm of one client's update (float).
DP_CLIPPING_NORM = "dp.clipping_norm"
#: server -> client: True when the server adds the noise (trusted-server model).
DP_CENTRAL = "dp.central"
#: server -> client: number of float values in the update (int), before padding.
DP_DIM = "dp.dim"

#: ConfigRecord (in the ServerApp's ``context.state``) holding the privacy ledger of
#: :class:`SecAggWorkflow`'s DP rounds: :data:`LEDGER_ORDERS`, :data:`LEDGER_RDP`,
#: :data:`LEDGER_ROUNDS`, :data:`LEDGER_EPSILON`, :data:`LEDGER_DELTA`. Copy it out after a run
#: and back in before the next to keep charging the same population.
LEDGER_RECORD = "secagg.dp.ledger"
#: ledger: the Rényi orders (list[float]).
LEDGER_ORDERS = "orders"
#: ledger: the composed RDP of every released round, one value per order (list[float]).
LEDGER_RDP = "rdp"
#: ledger: the server rounds charged, in order (list[int]).
LEDGER_ROUNDS = "rounds"
#: ledger: ε after the last charged round at :data:`LEDGER_DELTA` (float; informative, the
#: RDP curve is the truth).
LEDGER_EPSILON = "epsilon"
#: ledger: the δ of :data:`LEDGER_EPSILON` (float).
LEDGER_DELTA = "delta"
