"""secagg.DpEncoding and secagg.dp.Accountant: a DP round over the sans-IO objects, driven by
hand as a user with their own transport would, and the parameters a user gets wrong. The DP
parameters are the round's (``Server(dp=...)``, in its configuration): clients and server
derive the encoding from the configuration alone.

The clients' noise comes from the OS CSPRNG, so measured noise variances are compared with the
encoding's own prediction within bounds that a correct implementation leaves with probability
≤ 1e-6 (``noise_stats``)."""

from __future__ import annotations

import numpy as np
import pytest
from noise_stats import assert_noise_variance

import secagg

D = 100
DP = dict(dp="ddg", dp_noise_multiplier=0.5, dp_clip=1.0)


def _server(n: int = 5, min_clients: int | None = 4, dim: int = D, **kw) -> secagg.Server:
    return secagg.Server(clients=n, dim=dim, min_clients=min_clients, **{**DP, **kw})


def _updates(n: int, seed: int = 0, dim: int = D) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = [rng.normal(0.0, 0.5 / np.sqrt(dim), dim) for _ in range(n)]
    xs[0] *= 100  # norm ~50: clipped to 1
    return xs


def _clipped(x: np.ndarray, clip: float = 1.0) -> np.ndarray:
    return x * min(1.0, clip / np.linalg.norm(x))


def _round(n: int, xs: list[np.ndarray]):  # type: ignore[no-untyped-def]
    """A whole round with no dropouts, as a transport would drive it. Odd clients hand their
    float update to their Client, which encodes it for the round it is told of; even ones
    encode it themselves from the RoundStart they received (``round_config``), then hand the
    encoding and the same RoundStart to their Client. Returns (server, its encoding, the
    released mean)."""
    dim = xs[0].size
    server = _server(n, dim=dim)
    assert server.config["dim"] == secagg.DpEncoding.masked_dim(dim)
    enc = secagg.DpEncoding(server.config)
    server.start(0)
    clients: dict[int, secagg.Client] = {}
    pending = server.outgoing()
    for cid, msg in pending:
        config = secagg.round_config(msg)
        assert config == {k: v for k, v in server.config.items() if k in config}
        if cid % 2:
            clients[cid] = secagg.Client(cid, xs[cid - 1])
            continue
        mine = secagg.DpEncoding(config)
        assert mine.scale == enc.scale and mine.min_survivors == 4
        encoded = mine.encode(xs[cid - 1])
        assert encoded.dtype == np.uint32 and encoded.shape == (enc.padded_dim,)
        clients[cid] = secagg.Client(cid, encoded)
    for _ in range(10):
        if server.finished:
            break
        for cid, msg in pending:
            reply = clients[cid].handle(msg)
            if reply is not None:
                server.handle_message(0, cid, reply)
        pending = server.outgoing()
    return server, enc, enc.decode(server.result(), len(server.survivors))


def test_a_sans_io_dp_round_releases_the_clipped_mean_within_the_predicted_error() -> None:
    # Four rounds of 1024 values: 4096 errors pooled against the predicted variance.
    normalized = []
    for seed in range(4):
        xs = _updates(5, seed=seed, dim=1024)
        server, enc, mean = _round(5, xs)
        assert server.config["min_clients"] == 4 and len(server.config["round_seed"]) == 32
        assert len(server.survivors) == 5
        want = np.mean([_clipped(x) for x in xs], axis=0)
        sigma = enc.expected_error(5)
        # Distributed noise: each client adds 1/4 of (z * clip)^2, so 5 add 5/4 of it.
        assert enc.noise_variance(5) == pytest.approx((0.5 * np.sqrt(5 / 4) / 5) ** 2, rel=1e-3)
        assert sigma**2 == pytest.approx(enc.noise_variance(5), rel=1e-3)  # rounding is tiny
        normalized.append((mean - want) / sigma)
    assert_noise_variance(normalized)


def test_encode_decode_round_trip_is_the_clipped_mean() -> None:
    # No protocol: the wrapped sum of three encodings decodes to their clipped mean.
    # z must be > 0; this is nearly 0.
    server = _server(3, min_clients=3, dp_noise_multiplier=1e-4)
    enc = secagg.DpEncoding(server.config)
    xs = _updates(3, seed=1)
    total = np.zeros(enc.padded_dim, dtype=np.uint64)
    for x in xs:
        total = (total + enc.encode(x).astype(np.uint64)) % (1 << 32)
    mean = enc.decode(total.astype(np.uint32), 3)
    assert mean.dtype == np.float64 and mean.shape == (D,)
    want = np.mean([_clipped(x) for x in xs], axis=0)
    sigma = enc.expected_error(3)
    assert sigma < 1e-4
    np.testing.assert_allclose(mean, want, rtol=0, atol=6 * sigma)


@pytest.mark.parametrize("noise", ["ddg", "skellam"])
@pytest.mark.parametrize(
    ("clients", "min_survivors", "survivors", "central"),
    [
        (3, 3, 3, False),
        # Noise sized for 2 survivors, 8 (or 5 of the 8) survive: each adds half of
        # (z * clip)^2, so the sum carries 4 (2.5) times the target variance. Wrong scaling on
        # the clients (sized for 8, say) would measure a quarter of the prediction.
        (8, 2, 8, False),
        (8, 2, 5, False),
        # Central: the server adds (z * clip)^2 once, whoever survives.
        (8, 2, 5, True),
    ],
)
def test_the_predicted_error_matches_the_measured_one(
    noise: str, clients: int, min_survivors: int, survivors: int, central: bool
) -> None:
    d, z = 4096, 2.0
    server = secagg.Server(
        clients=clients,
        dim=d,
        min_clients=min_survivors,
        degree=clients - 1,
        threshold=2,
        accept_weaker_params=True,
        dp=noise,
        dp_noise_multiplier=z,
        dp_clip=1.0,
        dp_central=central,
    )
    assert server.config["min_clients"] == min_survivors
    enc = secagg.DpEncoding(server.config)
    assert (enc.noise, enc.central, enc.noise_multiplier, enc.dim) == (noise, central, z, d)
    # The prediction, in closed form: (z * clip)^2 * (survivors / min_survivors) on the sum
    # when distributed, (z * clip)^2 when central; over survivors^2 for the mean.
    total_var = z**2 * (1.0 if central else survivors / min_survivors)
    assert enc.noise_variance(survivors) == pytest.approx(total_var / survivors**2, rel=1e-3)
    sigma = enc.expected_error(survivors)
    assert sigma**2 == pytest.approx(enc.noise_variance(survivors), rel=1e-3)
    rng = np.random.default_rng(2)
    normalized = []
    for _ in range(2):  # 8192 coordinates
        xs = [rng.normal(0.0, 0.01, d) for _ in range(survivors)]
        total = sum(enc.encode(x).astype(np.uint64) for x in xs) % (1 << 32)
        err = enc.decode(total.astype(np.uint32), survivors) - np.mean(xs, axis=0)
        normalized.append(err / sigma)
    assert_noise_variance(normalized)


def test_central_noise_is_added_by_decode_not_encode() -> None:
    server = _server(3, min_clients=3, dp_central=True)
    enc = secagg.DpEncoding(server.config)
    assert enc.central and enc.local_variance == 0.0
    x = np.full(D, 0.01)
    once = enc.encode(x)
    # No noise on the client: encoding is deterministic up to stochastic rounding (±1).
    assert np.max(np.abs(once.astype(np.int64) - enc.encode(x).astype(np.int64))) <= 1
    total = (3 * once.astype(np.uint64)) % (1 << 32)
    a, b = enc.decode(total.astype(np.uint32), 3), enc.decode(total.astype(np.uint32), 3)
    assert not np.array_equal(a, b)  # a fresh central draw each time
    sigma = enc.expected_error(3)
    assert sigma == pytest.approx(0.5 / 3, rel=0.01)
    assert np.max(np.abs(a - 0.01)) < 6 * sigma


def test_a_client_floor_counts_only_on_its_honest_clients() -> None:
    # z = 2 sized for min_clients = 4: 1 honest survivor reaches 2·√(1/4) = 1.
    config = _server(5, dp_noise_multiplier=2.0).config
    assert config["min_clients"] == 4
    floor = secagg.dp.Floor(0.98, honest_clients=1)
    assert floor.min_noise_multiplier == 0.98 and floor.honest_clients == 1
    assert floor.effective_noise_multiplier(config) == pytest.approx(1.0)
    # The real multiplier (over the rounded sensitivity) is a little below the nominal one.
    real = floor.real_noise_multiplier(config)
    assert 0.98 < real < 1.0
    floor.check(config)
    with pytest.raises(ValueError, match="noise of 1 honest survivors"):
        floor.check(_server(5, dp_noise_multiplier=1.9).config)
    with pytest.raises(ValueError, match="multiplier 0.99"):
        secagg.dp.Floor(1.0, honest_clients=1).check(config)
    # Without honest_clients the client trusts min_clients.
    trusting = secagg.dp.Floor(0.98)
    assert trusting.honest_clients is None
    assert trusting.effective_noise_multiplier(_server(5, dp_noise_multiplier=1.9).config) == 1.9
    trusting.check(_server(5, dp_noise_multiplier=1.0).config)
    for other, match in [
        (_server(5, dp_noise_multiplier=0.9), "below this client's floor"),
        (secagg.Server(clients=5, dim=D), "without DP noise"),
        (_server(5, dp_noise_multiplier=5.0, dp_central=True), "central DP noise"),
    ]:
        with pytest.raises(ValueError, match=match):
            trusting.check(other.config)
    for z, honest, match in [
        (0.0, None, "must be a positive number"),
        (float("nan"), None, "must be a positive number"),
        (1.0, 0, "at least 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            secagg.dp.Floor(z, honest_clients=honest)
    with pytest.raises(ValueError, match="as a dict"):
        floor.check([1])


def test_accountant_composes_as_the_accountant_function() -> None:
    server = _server(5)
    enc = secagg.DpEncoding(server.config)
    acc = secagg.dp.Accountant()
    assert acc.epsilon(1e-5) == 0.0 and acc.epsilon_order(1e-5) == (0.0, None)
    three = acc.composed(enc, rounds=3)
    assert acc.epsilon(1e-5) == 0.0  # composed() leaves the original alone
    want = secagg.dp.epsilon(
        "ddg", 0.5, 1.0, 3, 1e-5, clients=5, dim=D, bits=32, clip=1.0, min_survivors=4
    )
    assert three.epsilon(1e-5) == pytest.approx(want["epsilon"], rel=1e-9)
    one_by_one = secagg.dp.Accountant()
    for _ in range(3):
        one_by_one.compose(enc)
    assert one_by_one.epsilon(1e-5) == pytest.approx(want["epsilon"], rel=1e-9)
    # A saved state restores to the same ε; sampling amplifies.
    restored = secagg.dp.Accountant(three.orders, three.rdp)
    assert restored.epsilon(1e-5) == three.epsilon(1e-5)
    assert acc.composed(enc, sampling_rate=0.1).epsilon(1e-5) < acc.composed(enc).epsilon(1e-5)


def test_bad_parameters_say_what_to_change() -> None:
    config = _server(5).config
    for kw, match in [
        ({"dp_noise_multiplier": 0.0}, "noise multiplier must be a positive number"),
        ({"dp_clip": -1.0}, "clipping norm must be a positive number"),
        ({"dp": "laplace"}, "use 'ddg'"),
        ({"dp_clip": None}, "dp_noise_multiplier= and dp_clip="),
    ]:
        with pytest.raises(ValueError, match=match):
            _server(5, **kw)
    with pytest.raises(ValueError, match='config lacks "round_seed"'):
        secagg.DpEncoding({k: v for k, v in config.items() if k != "round_seed"})
    with pytest.raises(ValueError, match='config lacks "encoding"'):
        secagg.DpEncoding({k: v for k, v in config.items() if k != "encoding"})
    with pytest.raises(ValueError, match="32 bytes"):
        secagg.DpEncoding({**config, "round_seed": b"x"})
    with pytest.raises(ValueError, match="as a dict"):
        secagg.DpEncoding([1, 2])
    # The encoding is read from the configuration's bytes only; the readable keys are ignored.
    assert secagg.DpEncoding({**config, "dp": None, "input": "integers"}).noise_multiplier == 0.5
    with pytest.raises(ValueError, match="its DP encoding of 100 values needs 128"):
        secagg.DpEncoding({**config, "dim": 256})
    with pytest.raises(ValueError, match="invalid input encoding"):
        secagg.DpEncoding({**config, "encoding": b"\x07"})
    with pytest.raises(ValueError, match="no DP encoding"):
        secagg.DpEncoding(secagg.Server(clients=5, dim=8).config)
    assert secagg.DpEncoding.masked_dim(300) == 512 and secagg.DpEncoding.masked_dim(1) == 1
    with pytest.raises(ValueError, match="dim must be at least 1"):
        secagg.DpEncoding.masked_dim(0)
    with pytest.raises(ValueError, match="min_clients 9 is more than"):
        _server(5, min_clients=9)
    # Negative counts are ValueErrors naming the argument (not OverflowError).
    for call, match in [
        (lambda: secagg.DpEncoding.masked_dim(-1), "dim must be ≥ 0, got -1"),
        (lambda: _server(5, dim=-3), "dim must be ≥ 0, got -3"),
        (lambda: _server(5, min_clients=-1), "min_clients must be ≥ 0, got -1"),
        (lambda: secagg.Server(clients=-5, dim=8), "clients must be ≥ 0, got -5"),
        (lambda: secagg.Server(clients=5, dim=-8), "dim must be ≥ 0, got -8"),
        (lambda: secagg.Server(clients=5, dim=8, max_weight=-1), "max_weight must be ≥ 0"),
        (lambda: secagg.Server(clients=5, dim=8, round_id=-1), "round_id must be ≥ 0"),
        (lambda: secagg.Server(clients=2**40, dim=8), "clients = 1099511627776 is too large"),
        (lambda: secagg.Client(-1, np.zeros(4, np.uint32)), "client_id must be ≥ 0, got -1"),
        (lambda: secagg.dp.epsilon("gaussian", 1.0, 1.0, -1, 1e-5), "rounds must be ≥ 0"),
        (lambda: secagg.dp.Floor(1.0, honest_clients=-2), "honest_clients must be ≥ 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    # 8 bits cannot hold the noise of 200 clients: the message names what to change.
    with pytest.raises(ValueError, match="bits="):
        secagg.Server(
            clients=200, dim=128, bits=8, degree=20, threshold=11, accept_weaker_params=True, **DP
        )

    enc = secagg.DpEncoding(config)
    with pytest.raises(ValueError, match="float"):
        enc.encode(np.zeros(D, dtype=np.uint32))
    with pytest.raises(ValueError, match="the round expects 100"):
        enc.encode(np.zeros(D + 1))
    with pytest.raises(ValueError, match="non-finite"):
        enc.encode(np.full(D, np.nan))
    with pytest.raises(ValueError, match="unsigned"):
        enc.decode(np.zeros(128), 5)
    with pytest.raises(ValueError, match="fewer than the 4"):
        enc.decode(np.zeros(128, dtype=np.uint32), 3)
    with pytest.raises(ValueError, match="128"):
        enc.decode(np.zeros(64, dtype=np.uint32), 5)
    with pytest.raises(ValueError, match="not below 2\\^32"):
        enc.decode(np.full(128, 2**40, dtype=np.uint64), 5)
    for call in (
        lambda: enc.decode(np.zeros(128, dtype=np.uint32), -1),
        lambda: enc.noise_variance(-1),
        lambda: enc.expected_error(-1),
    ):
        with pytest.raises(ValueError, match="survivors must be ≥ 0, got -1"):
            call()
    acc = secagg.dp.Accountant()
    for call in (lambda: acc.compose(enc, rounds=-1), lambda: acc.composed(enc, rounds=-1)):
        with pytest.raises(ValueError, match="rounds must be ≥ 0, got -1"):
            call()
    with pytest.raises(ValueError, match="is not ≥ 0"):
        secagg.dp.Accountant(None, [-1.0] * len(secagg.dp.Accountant().orders))
    with pytest.raises(ValueError, match="one per order"):
        secagg.dp.Accountant([2.0, 3.0], [0.0])


def test_round_config_refuses_what_is_not_a_round_start() -> None:
    with pytest.raises(secagg.ServerRefused):
        secagg.round_config(b"\x00garbage")
    server = _server(5)
    server.start(0)
    (cid, msg), *_ = server.outgoing()
    assert secagg.round_config(msg)["clients"] == 5
