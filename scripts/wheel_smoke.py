"""A round from the installed wheel alone: run in a fresh virtualenv that has only numpy and
the `secagg` wheel (no Rust toolchain, no source tree on the path). CI runs it after
scripts/build-wheel.sh; it exits non-zero on any failure.

It runs an in-process round (`secagg.simulate`), then the gRPC service on loopback: a server
(`secagg.serve`) with a ready file, three clients (`secagg.connect`), and `secagg.combine`
over the round it wrote, and checks both sums against numpy.
"""

import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

import secagg

here = os.path.dirname(os.path.abspath(secagg.__file__))
assert "site-packages" in here, f"secagg imported from {here}, not from the installed wheel"

xs = [np.arange(1000, dtype=np.uint32) * (i + 1) for i in range(20)]
want = sum(x.astype(np.uint64) for x in xs) % 2**32
r = secagg.simulate(xs)
assert np.array_equal(r.aggregate, want), "simulate: wrong sum"

with tempfile.TemporaryDirectory() as d:
    ready = os.path.join(d, "ready.json")
    opts = secagg.ServeOptions(
        clients=3, dim=8, data_dir=os.path.join(d, "data"), ready_file=ready, rounds=1
    )
    server = threading.Thread(target=secagg.serve, args=(opts,), daemon=True)
    server.start()
    t = time.time()
    while not os.path.exists(ready):
        assert time.time() - t < 30, "the server did not start"
        time.sleep(0.05)
    with open(ready) as f:
        addr = json.load(f)["address"]
    inputs = [np.arange(8, dtype=np.uint32) + 10 * i for i in range(3)]
    receipts = []

    def take_part(i):
        c = secagg.connect(f"http://{addr}", name=f"c{i}")
        receipts.append(c.submit(inputs[i]))

    clients = [threading.Thread(target=take_part, args=(i,)) for i in range(3)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(120)
    server.join(120)
    assert len(receipts) == 3, f"only {len(receipts)} clients finished"
    out = os.path.join(d, "global.npy")
    report = secagg.combine([os.path.join(d, "data")], out)
    assert report["ok"], report
    got = np.load(out)
    assert np.array_equal(got, sum(x.astype(np.uint64) for x in inputs)), got

print(f"wheel smoke: ok (secagg {secagg.__version__}, Python {sys.version.split()[0]})")
