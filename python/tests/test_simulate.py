"""secagg.simulate against numpy: sums mod 2^bits and weighted means, with dropouts at every
stage."""

import json

import numpy as np
import pytest

import secagg

N = 10
DIM = 50
UNSIGNED = [np.uint8, np.uint16, np.uint32, np.uint64]


def unsigned_inputs(dtype, n=N, dim=DIM, seed=0):
    bits = np.iinfo(dtype).bits
    # Largest value whose sum over n clients cannot wrap 2^bits (the round refuses otherwise).
    top = min((2**bits - 1) // n, 2**62)
    rng = np.random.default_rng(seed)
    return [rng.integers(0, top + 1, size=dim, dtype=np.uint64).astype(dtype) for _ in range(n)]


def numpy_sum(inputs, indices, bits):
    total = [0] * len(inputs[0])
    for i in indices:
        total = [a + int(b) for a, b in zip(total, inputs[i].tolist())]
    return np.array([x % 2**bits for x in total], dtype=np.uint64)


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_sum_without_dropouts(dtype):
    xs = unsigned_inputs(dtype, seed=1)
    bits = np.iinfo(dtype).bits
    r = secagg.simulate(xs, bits=bits, seed=3)
    assert r.aborted is None and r.aggregate_ok
    assert r.survivors == list(range(N)) and r.dropped == []
    assert r.aggregate.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), numpy_sum(xs, range(N), bits))


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize(
    "stage,threat",
    [
        ("advertise", "honest-but-curious"),
        ("share", "honest-but-curious"),
        ("masked-input", "honest-but-curious"),
        ("consistency", "malicious"),
        ("unmask", "honest-but-curious"),
        ("unmask", "malicious"),
    ],
)
def test_sum_with_dropouts_at_every_stage(dtype, stage, threat):
    xs = unsigned_inputs(dtype, seed=hash((stage, threat)) % 1000)
    bits = np.iinfo(dtype).bits
    r = secagg.simulate(xs, bits=bits, dropout=0.2, dropout_stage=stage, threat=threat, seed=11)
    assert r.aborted is None, r.aborted
    dropped_clients = sorted(d["client"] for d in r.dropouts)
    assert len(dropped_clients) == 2 and all(d["stage"] == stage for d in r.dropouts)
    if stage in ("advertise", "share", "masked-input"):
        # Gone before uploading: not in the sum.
        assert r.dropped == dropped_clients
    else:
        # Gone after uploading: still summed.
        assert r.dropped == []
    assert sorted(r.survivors + r.dropped) == list(range(N))
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), numpy_sum(xs, r.survivors, bits))
    assert r.parameters["dropout_stage"] == stage and r.parameters["threat"] == threat


def test_sum_wraps_mod_2_to_the_bits_like_numpy():
    """Values that fit the dtype but whose sum needs bits=64 headroom: numpy's wrapping uint64
    addition and the protocol agree."""
    rng = np.random.default_rng(5)
    xs = [rng.integers(0, 2**40, size=DIM, dtype=np.uint64) for _ in range(N)]
    r = secagg.simulate(xs, bits=64, seed=2)
    want = np.zeros(DIM, dtype=np.uint64)
    for x in xs:
        want += x
    np.testing.assert_array_equal(r.aggregate, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stage", ["share", "masked-input", "unmask"])
def test_weighted_mean_with_dropouts(dtype, stage):
    rng = np.random.default_rng(7)
    xs = [rng.normal(size=DIM).astype(dtype) for _ in range(N)]
    weights = rng.integers(1, 100, size=N)
    r = secagg.simulate(xs, weights=weights, dropout=0.2, dropout_stage=stage, seed=4, clip=8.0)
    assert r.aborted is None and r.aggregate_ok
    assert r.aggregate.dtype == np.float64
    s = r.survivors
    clipped = np.clip(np.stack([x.astype(np.float64) for x in xs]), -8.0, 8.0)
    want = np.average(clipped[s], axis=0, weights=weights[s])
    err, bound = r.mean_error
    assert bound < 1e-3
    np.testing.assert_allclose(r.aggregate, want, rtol=0, atol=bound)
    assert r.total_weight == int(weights[s].sum())


def test_mean_clips_to_the_public_range():
    xs = [np.array([10.0, -10.0, 0.5])] * 4
    r = secagg.simulate(xs, clip=1.0, seed=1)
    np.testing.assert_allclose(r.aggregate, [1.0, -1.0, 0.5], atol=1e-6)


def test_result_has_stage_timings_and_bytes_and_serialises():
    xs = unsigned_inputs(np.uint32, seed=9)
    r = secagg.simulate(xs, seed=1, threat="malicious")
    assert list(r.stages) == ["advertise", "share", "masked-input", "consistency", "unmask"]
    up = r.stages["masked-input"]["bytes_up_per_client"]
    assert DIM * 4 <= up < DIM * 4 + 200  # 32-bit packing plus a small header
    assert all(s["server_s"] >= 0 and s["senders"] == N for s in r.stages.values())
    assert r.wall_s > 0 and r.k >= r.t >= 1
    d = json.loads(json.dumps(r.to_dict()))
    assert d["aggregate"] == r.aggregate.tolist()
    assert [s["stage"] for s in d["stages"]] == list(r.stages)


def test_same_seed_same_round_different_seed_different_dropouts():
    xs = unsigned_inputs(np.uint16, n=20, seed=2)
    a = secagg.simulate(xs, bits=16, seed=5, dropout=0.25)
    b = secagg.simulate(xs, bits=16, seed=5, dropout=0.25)
    c = secagg.simulate(xs, bits=16, seed=6, dropout=0.25)
    assert a.dropped == b.dropped and a.survivors == b.survivors
    assert c.dropped != a.dropped
    assert a.stages["advertise"]["bytes_up_per_client"] == b.stages["advertise"]["bytes_up_per_client"]


def test_too_many_dropouts_abort_and_release_nothing():
    xs = unsigned_inputs(np.uint32, seed=1)
    r = secagg.simulate(
        xs, seed=1, dropout=0.9, dropout_stage="masked-input", assumed_dropout=0.05
    )
    assert r.aborted is not None and "aborted" in r.aborted
    assert r.aggregate is None and r.survivors == [] and r.dropped == list(range(N))


def test_inputs_are_not_modified_and_output_is_not_copied():
    xs = unsigned_inputs(np.uint64, seed=1)
    before = [x.copy() for x in xs]
    r = secagg.simulate(xs, bits=64, seed=1)
    for x, y in zip(xs, before):
        np.testing.assert_array_equal(x, y)
    # The Rust vector was handed to numpy as is: numpy does not own (did not copy) the data.
    assert not r.aggregate.flags.owndata and r.aggregate.base is not None


def test_non_contiguous_views_are_read_correctly():
    base = [np.arange(2 * DIM, dtype=np.uint32) * (i + 1) for i in range(4)]
    views = [b[::2] for b in base]
    assert not views[0].flags.c_contiguous
    r = secagg.simulate(views, seed=1)
    np.testing.assert_array_equal(r.aggregate, sum(v.astype(np.uint64) for v in views))


def test_two_dimensional_stack_is_accepted_as_rows():
    xs = np.stack(unsigned_inputs(np.uint32, seed=4))
    r = secagg.simulate(xs, seed=1)
    np.testing.assert_array_equal(r.aggregate, xs.astype(np.uint64).sum(axis=0) % 2**32)


def test_the_gil_is_released_during_the_round():
    """Another Python thread keeps running while a round is simulated."""
    import threading
    import time

    xs = unsigned_inputs(np.uint32, n=60, dim=100_000, seed=3)
    done = threading.Event()
    took = []

    def run():
        t = time.perf_counter()
        secagg.simulate(xs, seed=1)
        took.append(time.perf_counter() - t)
        done.set()

    worker = threading.Thread(target=run)
    last = time.perf_counter()
    worker.start()
    longest_gap, spins = 0.0, 0
    while not done.is_set():
        now = time.perf_counter()
        longest_gap = max(longest_gap, now - last)
        last = now
        spins += 1
        time.sleep(0.0005)
    worker.join()
    # Holding the GIL would freeze this loop for the whole round.
    assert spins >= 5 and longest_gap < 0.5 * took[0], (spins, longest_gap, took[0])
