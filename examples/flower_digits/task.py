"""The learning task: scikit-learn's digits, split over clients, and a small numpy MLP.

Everything is deterministic from a seed, so runs with and without secure aggregation start
from the same model and see the same batches: their accuracy curves can be compared round by
round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits

NUM_CLASSES = 10
NUM_FEATURES = 64


@dataclass(frozen=True)
class Partitions:
    """Training data split over clients, plus a held-out test set."""

    x: list[np.ndarray]
    y: list[np.ndarray]
    x_test: np.ndarray
    y_test: np.ndarray


def load_partitions(num_clients: int, *, alpha: float = 1.0, seed: int = 0) -> Partitions:
    """Split digits over ``num_clients`` with label skew drawn from Dirichlet(``alpha``).

    20% of the data is held out for testing. Each client gets at least 8 examples.
    """
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float64)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    min_size = 8
    if num_clients * min_size > len(train):
        raise ValueError(
            f"{num_clients} clients need at least {num_clients * min_size} training examples; "
            f"digits has {len(train)}: use fewer clients"
        )
    # Every client first gets min_size random examples; the rest is dealt out per class with
    # Dirichlet proportions, which skews each client's labels.
    train = train[rng.permutation(len(train))]
    owners: list[list[int]] = [
        train[i * min_size : (i + 1) * min_size].tolist() for i in range(num_clients)
    ]
    rest = train[num_clients * min_size :]
    for c in range(NUM_CLASSES):
        idx = rest[y[rest] == c]
        share = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(share) * len(idx)).astype(int)[:-1]
        for owner, part in zip(owners, np.split(idx, cuts), strict=True):
            owner.extend(part.tolist())
    parts = [np.array(sorted(o)) for o in owners]
    return Partitions(
        x=[x[p] for p in parts],
        y=[y[p] for p in parts],
        x_test=x[test],
        y_test=y[test],
    )


def init_params(hidden: int, *, seed: int = 0) -> list[np.ndarray]:
    """Weights of a 64-``hidden``-10 MLP (``hidden`` = 0: multinomial logistic regression)."""
    rng = np.random.default_rng(seed)
    if hidden == 0:
        return [np.zeros((NUM_FEATURES, NUM_CLASSES)), np.zeros(NUM_CLASSES)]
    return [
        rng.normal(0.0, np.sqrt(2.0 / NUM_FEATURES), (NUM_FEATURES, hidden)),
        np.zeros(hidden),
        rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, NUM_CLASSES)),
        np.zeros(NUM_CLASSES),
    ]


def num_params(hidden: int) -> int:
    """How many floats the model has."""
    return sum(p.size for p in init_params(hidden))


def _forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if len(params) == 2:
        return x @ params[0] + params[1], None
    h = np.maximum(x @ params[0] + params[1], 0.0)
    return h @ params[2] + params[3], h


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def evaluate(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``params`` on ``(x, y)``."""
    logits, _ = _forward(params, x)
    p = _softmax(logits)
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    acc = float(np.mean(np.argmax(logits, axis=1) == y))
    return loss, acc


def train(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 2,
    lr: float = 0.1,
    batch: int = 16,
    seed: int = 0,
) -> list[np.ndarray]:
    """Mini-batch SGD on softmax cross-entropy; returns new parameters."""
    params = [p.copy() for p in params]
    rng = np.random.default_rng(seed)
    onehot = np.eye(NUM_CLASSES)[y]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            b = order[start : start + batch]
            xb, yb = x[b], onehot[b]
            logits, h = _forward(params, xb)
            g_logits = (_softmax(logits) - yb) / len(b)
            if h is None:
                grads = [xb.T @ g_logits, g_logits.sum(axis=0)]
            else:
                g_h = (g_logits @ params[2].T) * (h > 0)
                grads = [xb.T @ g_h, g_h.sum(axis=0), h.T @ g_logits, g_logits.sum(axis=0)]
            for p, g in zip(params, grads, strict=True):
                p -= lr * g
    return params
