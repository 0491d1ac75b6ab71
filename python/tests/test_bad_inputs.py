"""Bad inputs raise ValueError with a message that says what to change."""

import numpy as np
import pytest

import secagg

GOOD = [np.arange(8, dtype=np.uint32) for _ in range(4)]
SECRETS, KEYS = (list(x) for x in zip(*(secagg.keygen(bytes([i + 1]) * 32) for i in range(6))))


@pytest.mark.parametrize(
    "inputs,kwargs,hint",
    [
        ([np.zeros(8, np.uint32), np.zeros(7, np.uint32)], {}, "same length"),
        ([np.zeros(8, np.int64)] * 3, {}, "astype(np.uint32)"),
        ([np.zeros(8, np.int32)] * 3, {}, "signed integer"),
        ([np.zeros(8, bool)] * 3, {}, "bool"),
        ([np.zeros(8, np.complex128)] * 3, {}, "complex"),
        ([np.array([1, "a"], dtype=object)] * 3, {}, "dtype object"),
        ([np.zeros(8, np.float16)] * 3, {}, "float32 or float64"),
        ([np.zeros((2, 4), np.uint32)] * 3, {}, "1-D"),
        ([[1, 2, 3]] * 3, {}, "numpy array"),
        ([np.zeros(8, np.uint32), np.zeros(8, np.float32)], {}, "all unsigned integers"),
        ([np.array([1.0, np.nan])] * 3, {}, "NaN"),
        ([np.array([1.0, np.inf])] * 3, {}, "non-finite"),
        ([np.zeros(8, np.uint32)], {}, "at least 2"),
        ([np.zeros(0, np.uint32)] * 3, {}, "empty"),
        # Sums that could wrap 2^bits.
        ([np.full(8, 255, np.uint8)] * 3, {"bits": 8}, "bits"),
        ([np.full(8, 2**31, np.uint32)] * 3, {"bits": 32}, "bits"),
        (GOOD, {"bits": 0}, "bits must be in 1..=64"),
        (GOOD, {"bits": 65}, "bits must be in 1..=64"),
        # Weaker parameters than the threat model needs.
        ([np.zeros(8, np.uint32)] * 40, {"degree": 2, "threshold": 2}, "accept_weaker_params=True"),
        (GOOD, {"dropout": 1.5}, "[0, 1]"),
        (GOOD, {"dropout": -0.1}, "[0, 1]"),
        (GOOD, {"dropout_stage": "upload", "dropout": 0.1}, "'masked-input'"),
        (GOOD, {"dropout_stage": "consistency", "dropout": 0.25}, "threat='malicious'"),
        (GOOD, {"threat": "evil"}, "'malicious'"),
        (GOOD, {"graph": "ring"}, "'harary'"),
        (GOOD, {"prg": "mt19937"}, "'chacha'"),
        (GOOD, {"weights": [1, 2, 3, 4]}, "float inputs only"),
        (GOOD, {"clip": 1.0}, "float inputs only"),
        ([np.zeros(8)] * 4, {"weights": [1, 2]}, "one weight per input"),
        ([np.zeros(8)] * 4, {"weights": [1, 2, -3, 4]}, "non-negative"),
        ([np.zeros(8)] * 4, {"weights": [1.5, 2, 3, 4]}, "integers"),
        ([np.zeros(8)] * 4, {"clip": -1.0}, "positive"),
        (GOOD, {"assumed_corrupt": 1.2}, "assumed_corrupt"),
        # Negative counts are ValueErrors naming the argument, not OverflowErrors.
        (GOOD, {"degree": -1}, "degree must be ≥ 0"),
        (GOOD, {"threshold": -2}, "threshold must be ≥ 0"),
        ([np.zeros(8)] * 4, {"dp": "ddg", "dp_rounds": -1}, "dp_rounds must be ≥ 0"),
        (np.zeros(8, np.uint32), {}, "shape"),
    ],
)
def test_bad_inputs_raise_value_error_saying_what_to_change(inputs, kwargs, hint):
    with pytest.raises(ValueError) as e:
        secagg.simulate(inputs, seed=1, **kwargs)
    assert hint in str(e.value), str(e.value)


def test_overflow_message_names_the_fix():
    with pytest.raises(ValueError) as e:
        secagg.simulate([np.full(4, 200, np.uint8)] * 3, bits=8, seed=1)
    msg = str(e.value)
    assert "bits" in msg and any(ch.isdigit() for ch in msg)


def test_weaker_params_run_when_accepted_and_warn():
    xs = [np.full(8, i, np.uint32) for i in range(40)]
    r = secagg.simulate(xs, degree=2, threshold=2, accept_weaker_params=True, seed=1)
    assert r.aggregate_ok and any("weaker" in w for w in r.warnings)


@pytest.mark.parametrize(
    "kwargs,hint",
    [
        ({"clients": 4, "dim": 0}, "dim"),
        ({"clients": 1, "dim": 4}, "at least 2"),
        ({"clients": 4, "dim": 4, "threat": "malicious"}, "roster"),
        ({"clients": 4, "dim": 4, "roster": [b"x" * 32] * 4}, "threat='malicious'"),
        ({"clients": 4, "dim": 4, "round_seed": b"short"}, "32 bytes"),
        ({"clients": 4, "dim": 4, "bits": 70}, "bits"),
        ({"clients": 2000, "dim": 4, "bits": 8, "clip": 1.0, "max_weight": 1}, "bits"),
        ({"clients": 40, "dim": 4, "degree": 2, "threshold": 2}, "accept_weaker_params=True"),
        # One key at two ids: one party could be several neighbours of one client.
        (
            {"clients": 3, "dim": 4, "threat": "malicious", "roster": [KEYS[0], KEYS[1], KEYS[0]]},
            "same public key",
        ),
        # Below the survivors a malicious-server round needs (⌈0.95·6⌉ = 6).
        (
            {"clients": 6, "dim": 4, "threat": "malicious", "roster": KEYS[:6], "min_clients": 3},
            "min_clients 3 is below the 6",
        ),
        ({"clients": 4, "dim": 4, "dp": "ddg"}, "dp_noise_multiplier= and dp_clip="),
        ({"clients": 4, "dim": 4, "dp": "laplace", "dp_noise_multiplier": 1.0, "dp_clip": 1.0},
         "unknown dp"),
        ({"clients": 4, "dim": 4, "dp_clip": 1.0}, "go with dp="),
        ({"clients": 4, "dim": 4, "clip": 1.0, "dp": "ddg", "dp_noise_multiplier": 1.0,
          "dp_clip": 1.0}, "exclude each other"),
    ],
)
def test_bad_server_parameters(kwargs, hint):
    with pytest.raises(ValueError) as e:
        secagg.Server(**kwargs)
    assert hint in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "args,kwargs,hint",
    [
        ((0, GOOD[0]), {}, "1-based"),
        ((1, np.zeros(4, np.int16)), {}, "signed"),
        # The encoding is the round's (in its configuration), not the client's.
        ((1, np.zeros(4)), {"clip": 1.0}, "no longer the client's"),
        ((1, np.zeros(4)), {"max_weight": 2}, "no longer the client's"),
        ((1, GOOD[0]), {"weight": 5}, "weight= is for float inputs"),
        # Seeds are for tests only, and say so.
        ((1, GOOD[0]), {"seed": 1}, "tests only"),
        ((1, GOOD[0]), {"seed": b"s" * 32}, "insecure_test_seed=True"),
        ((1, GOOD[0]), {"seed": b"short", "insecure_test_seed": True}, "32 bytes"),
        ((1, GOOD[0]), {"identity": b"k" * 32}, "go together"),
        ((1, GOOD[0]), {"identity": b"k" * 31, "roster": [b"p" * 32]}, "32-byte"),
        # The client's own threat model.
        ((1, GOOD[0]), {"threat": "malicious"}, "needs identity="),
        ((1, GOOD[0]), {"require_malicious_model": True}, "needs identity="),
        ((1, GOOD[0]), {"threat": "byzantine"}, "unknown threat"),
        ((1, GOOD[0]), {"assumed_corrupt": 1.5}, "assumed_corrupt must be a fraction"),
        ((1, GOOD[0]), {"assumed_dropout": -0.1}, "assumed_dropout must be a fraction"),
        # Its roster: no key twice, its own key at its own index.
        ((1, GOOD[0]), {"identity": SECRETS[0], "roster": [KEYS[0], KEYS[1], KEYS[1]]},
         "same public key"),
        ((2, GOOD[0]), {"identity": SECRETS[0], "roster": KEYS[:3]}, "roster[1] is not"),
    ],
)
def test_bad_client_parameters(args, kwargs, hint):
    with pytest.raises(ValueError) as e:
        secagg.Client(*args, **kwargs)
    assert hint in str(e.value), str(e.value)


def test_negative_times_and_ids_to_a_server_are_value_errors():
    server = secagg.Server(clients=3, dim=4)
    with pytest.raises(ValueError, match="now_ms must be ≥ 0"):
        server.start(-1)
    server.start(0)
    with pytest.raises(ValueError, match="client_id must be ≥ 0"):
        server.handle_message(0, -1, b"")
    with pytest.raises(ValueError, match="now_ms must be ≥ 0"):
        server.handle_timeout(-5)
    with pytest.raises(ValueError, match="client_id must be ≥ 0"):
        server.client_gone(0, -2)
