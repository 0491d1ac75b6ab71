"""A client given its input only at the masked-input stage (``Client(id, dim=d)``, then
``handle(message, input=...)``): same messages and sums as a client given it at construction,
a saved state that holds no vector whatever d is, and refusals that say what is wrong."""

import numpy as np
import pytest

import secagg

from test_round_objects import TIMEOUT_MS, drive


class _Deferred:
    """A client made with dim=, given ``input`` (an array, or a function returning an
    iterable) when the masked-input request arrives; saved and restored between messages
    when ``restore``."""

    def __init__(self, cid, dim, input, *, restore=False, weight=None, seed=None, **kw):
        self.live = secagg.Client(cid, dim=dim, seed=seed, insecure_test_seed=seed is not None, **kw)
        self.input, self.restore, self.weight = input, restore, weight
        self.saved = None
        self.state_sizes = []

    def handle(self, msg):
        if self.saved is not None:
            self.live = secagg.Client.from_state(self.saved)
            self.saved = None
        if self.live.stage == "masked-input":
            x = self.input() if callable(self.input) else self.input
            reply = self.live.handle(msg, input=x, weight=self.weight)
        else:
            reply = self.live.handle(msg)
        if self.restore and not (self.live.finished or self.live.failed):
            self.saved = self.live.export_state()
            self.state_sizes.append((self.live.stage, len(self.saved)))
        return reply

    @property
    def finished(self):
        return self.live is None or self.live.finished


def _chunks(x, sizes):
    """``x`` in pieces of the given sizes (cycled), as a generator."""
    lo, i = 0, 0
    while lo < len(x):
        hi = lo + sizes[i % len(sizes)]
        yield x[lo:hi]
        lo, i = hi, i + 1


def test_input_at_the_masked_input_stage_gives_the_same_messages_and_sum():
    n, dim = 5, 1000
    rng = np.random.default_rng(4)
    xs = [rng.integers(0, 2**20, size=dim, dtype=np.uint32) for _ in range(n)]
    server = secagg.Server(clients=n, dim=dim, stage_timeout_ms=TIMEOUT_MS)
    held = secagg.Client(1, xs[0], seed=7, insecure_test_seed=True)
    clients = {
        1: _Deferred(1, dim, xs[0], seed=7),  # one array, read in chunks
        2: _Deferred(2, dim, lambda: _chunks(xs[1].astype(np.uint64), [5, 64, 3])),
        3: _Deferred(3, dim, xs[2][::-1].copy()[::-1], restore=True),  # a reversed view
        **{i + 1: secagg.Client(i + 1, xs[i]) for i in (3, 4)},
    }

    class Twin:
        """Client 1, checked byte for byte against a client given its input up front."""

        def handle(self, msg):
            want = held.handle(msg)
            got = clients_1.handle(msg)
            assert got == want
            return got

    clients_1, clients[1] = clients[1], Twin()
    drive(server, clients)
    assert server.aborted is None and server.survivors == [1, 2, 3, 4, 5]
    want = sum(x.astype(np.uint64) for x in xs) % 2**32
    np.testing.assert_array_equal(server.result(), want)
    assert clients_1.live.finished


def test_a_deferred_float_input_gives_the_weighted_mean_and_a_restored_client_needs_its_weight():
    n, dim = 4, 300
    rng = np.random.default_rng(5)
    xs = [rng.uniform(-1, 1, size=dim).astype(np.float32) for _ in range(n)]
    w = [1, 2, 3, 4]
    server = secagg.Server(clients=n, dim=dim, clip=1.0, max_weight=10, stage_timeout_ms=TIMEOUT_MS)
    clients = {
        1: _Deferred(1, dim, xs[0], weight=1),
        2: _Deferred(2, dim, lambda: _chunks(xs[1].astype(np.float64), [17]), weight=2),
        3: _Deferred(3, dim, xs[2], restore=True, weight=3),
        4: secagg.Client(4, xs[3], weight=4),
    }
    drive(server, clients)
    want = np.average(np.stack(xs).astype(np.float64), axis=0, weights=w)
    np.testing.assert_allclose(server.result(), want, atol=1e-6)
    assert server.total_weight == 10

    # A client restored from its saved state does not know the constructor's weight.
    server, clients, request, _ = _to_masked_input(4, clip=1.0, max_weight=10)
    restored = secagg.Client.from_state(clients[1].export_state())
    x = np.full(4, 0.5, np.float32)
    with pytest.raises(ValueError, match="give it with the input"):
        restored.handle(request, input=x)
    with pytest.raises(ValueError, match="max_weight 10"):
        restored.handle(request, input=x, weight=11)
    server.handle_message(0, 1, restored.handle(request, input=x, weight=2))
    clients[1] = restored
    drive_rest(server, clients)
    assert server.total_weight == 2 + 1 + 1


def _to_masked_input(dim, *, n=3, **server_kwargs):
    """A round run until client 1 (made with dim=) gets its masked-input request; returns the
    server, client 1, the request, and the other clients' inputs."""
    rng = np.random.default_rng(6)
    xs = [rng.integers(0, 2**16, size=dim, dtype=np.uint32) for _ in range(n)]
    if "clip" in server_kwargs:
        xs = [rng.uniform(-1, 1, size=dim).astype(np.float32) for _ in range(n)]
    server = secagg.Server(clients=n, dim=dim, stage_timeout_ms=TIMEOUT_MS, **server_kwargs)
    clients = {1: secagg.Client(1, dim=dim)}
    clients.update({i + 1: secagg.Client(i + 1, xs[i]) for i in range(1, n)})
    server.start(0)
    while True:
        request = None
        for cid, msg in server.outgoing():
            if cid == 1 and clients[1].stage == "masked-input":
                request = msg
                continue
            reply = clients[cid].handle(msg)
            if reply is not None:
                server.handle_message(0, cid, reply)
        if request is not None:
            return server, clients, request, xs


def test_a_wrong_input_at_the_masked_input_stage_says_why_and_leaves_the_client_ready():
    dim = 40
    server, clients, request, xs = _to_masked_input(dim)
    c = clients[1]
    with pytest.raises(ValueError, match="made without its input"):
        c.handle(request)
    with pytest.raises(ValueError, match=r"input has 39 values, but the round takes 40"):
        c.handle(request, input=xs[0][:-1])
    with pytest.raises(ValueError, match="signed integer dtype int64"):
        c.handle(request, input=xs[0].astype(np.int64))
    with pytest.raises(ValueError, match="sums unsigned integers, but the input is floats"):
        c.handle(request, input=xs[0].astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        c.handle(request, input=xs[0].reshape(4, 10))
    assert c.stage == "masked-input" and not c.failed
    # The same client, given the right input, completes the round.
    reply = c.handle(request, input=xs[0])
    server.handle_message(0, 1, reply)
    drive_rest(server, clients)
    np.testing.assert_array_equal(server.result(), sum(x.astype(np.uint64) for x in xs) % 2**32)


def drive_rest(server, clients):
    for _ in range(10):  # the stages left
        if server.finished:
            return
        for cid, msg in server.outgoing():
            reply = clients[cid].handle(msg)
            if reply is not None:
                server.handle_message(0, cid, reply)


def test_a_bad_chunk_while_streaming_stops_the_client():
    dim = 40
    _, clients, request, xs = _to_masked_input(dim)
    with pytest.raises(ValueError, match=r"more than the 40 values"):
        clients[1].handle(request, input=iter([xs[0], xs[0][:1]]))
    assert clients[1].failed
    _, clients, request, xs = _to_masked_input(dim, bits=16)
    bad = xs[0].astype(np.uint64)
    bad[33] = 2**16
    with pytest.raises(ValueError, match=r"value 65536 at index 33, not below 2\^16"):
        clients[1].handle(request, input=_chunks(bad, [8]))
    assert clients[1].failed
    _, clients, request, xs = _to_masked_input(dim)
    with pytest.raises(ValueError, match=r"input has 24 values, but the round takes 40"):
        clients[1].handle(request, input=_chunks(xs[0][:24], [8]))
    with pytest.raises(ValueError, match="dim="):
        secagg.Client(1)
    with pytest.raises(ValueError, match="not both"):
        secagg.Client(1, xs[0], dim=dim)


def test_input_is_refused_before_the_masked_input_stage_and_by_a_client_that_has_one():
    server = secagg.Server(clients=3, dim=8)
    server.start(0)
    (_, start), *_ = server.outgoing()
    with pytest.raises(ValueError, match="comes with the masked-input request"):
        secagg.Client(1, dim=8).handle(start, input=np.zeros(8, np.uint32))
    with pytest.raises(ValueError, match="given at construction"):
        secagg.Client(1, np.zeros(8, np.uint32)).handle(start, input=np.zeros(8, np.uint32))
    # A round of another length is refused when it starts, before any key leaves.
    with pytest.raises(secagg.ServerRefused, match="length 8"):
        secagg.Client(1, dim=9).handle(start)


@pytest.mark.parametrize("dim", [10, 200_000])
def test_the_saved_state_of_a_deferred_client_holds_no_vector(dim):
    n = 3
    server = secagg.Server(clients=n, dim=dim, stage_timeout_ms=TIMEOUT_MS)
    x = np.arange(dim, dtype=np.uint32)
    clients = {i: _Deferred(i, dim, x, restore=True) for i in range(1, n + 1)}
    drive(server, clients)
    np.testing.assert_array_equal(server.result(), (3 * x.astype(np.uint64)) % 2**32)
    sizes = dict(clients[1].state_sizes)
    # Keys, seeds and one entry per neighbour: the same few hundred bytes for any d.
    assert sizes["share"] < 1000 and sizes["masked-input"] < 1000, sizes
    # A client given its input up front keeps it packed (4 bytes a value here).
    held = secagg.Client(1, x)
    server = secagg.Server(clients=n, dim=dim)
    server.start(0)
    held.handle(dict(server.outgoing())[1])
    assert len(held.export_state()) > 4 * dim
