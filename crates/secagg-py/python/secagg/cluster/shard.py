"""One shard: the server of one cohort (``secagg.serve``, the Rust server of ``secagg server``)
running in a thread of this process. The driver runs each as a Ray actor
(``ray.remote(ShardServer)``); nothing here imports Ray, so it can also run on its own."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.request
from typing import Any, Optional

from .. import _secagg

#: The stages of a round in order, as the server's metrics name them.
STAGES = ("advertise", "share", "masked-input", "consistency", "unmask")

_GAUGE = re.compile(r'^secagg_clients\{stage="([a-z-]+)"\}\s+(\d+)', re.MULTILINE)


def _free_port() -> int:
    # The metrics endpoint takes a fixed address: ask the OS for a free port, then hand it over.
    # Another process could take it in between; the shard then has no stage to report.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ShardServer:
    """Serves one round of one cohort (``rounds=1``) from construction on.

    Args:
        serve_kwargs: keyword arguments of :class:`secagg.ServeOptions` (``data_dir`` is
            created; ``ready_file`` and ``metrics`` are set here).
    """

    def __init__(self, serve_kwargs: "dict[str, Any]") -> None:
        kwargs = dict(serve_kwargs)
        os.makedirs(kwargs["data_dir"], exist_ok=True)
        self._ready_file = os.path.join(kwargs["data_dir"], "ready.json")
        kwargs["ready_file"] = self._ready_file
        self._metrics = f"127.0.0.1:{_free_port()}"
        kwargs["metrics"] = self._metrics
        kwargs.setdefault("rounds", 1)
        # Checked here: bad options fail the actor's construction, before any client comes.
        self._options = _secagg.ServeOptions(**kwargs)
        self._data_dir = kwargs["data_dir"]
        self._done = threading.Event()
        self._error: Optional[str] = None
        self._thread = threading.Thread(target=self._serve, name="secagg-shard", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            _secagg.serve(self._options)
        except BaseException as exc:  # reported through wait() and address()
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._done.set()

    def address(self, timeout: float = 60.0) -> "dict[str, Any]":
        """The ready file's contents (``address``, ``pid``, ``cohort``) once the server listens.

        Raises:
            RuntimeError: the server stopped before listening, or did not listen in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self._ready_file, encoding="utf-8") as f:
                    return dict(json.load(f))
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            if self._done.is_set():
                raise RuntimeError(
                    f"the server stopped before listening: {self._error or 'no error'}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen within {timeout} s")
            time.sleep(0.02)

    def stage(self) -> Optional[str]:
        """The furthest stage the current round has entered (from the server's metrics), or
        ``None`` before the first round starts or when the metrics cannot be read."""
        try:
            with urllib.request.urlopen(f"http://{self._metrics}/metrics", timeout=2) as r:
                text = r.read().decode("utf-8", "replace")
        except OSError:
            return None
        seen = {m.group(1) for m in _GAUGE.finditer(text)}
        entered = [s for s in STAGES if s in seen]
        return entered[-1] if entered else None

    def wait(self, timeout: float) -> "dict[str, Any]":
        """Waits until the server has ended its round (or ``timeout``); returns ``{"done",
        "error", "results"}``: ``results`` lists the round JSONs it wrote."""
        self._done.wait(timeout)
        rounds = os.path.join(self._data_dir, "rounds")
        results = (
            sorted(os.path.join(rounds, f) for f in os.listdir(rounds) if f.endswith(".json"))
            if os.path.isdir(rounds)
            else []
        )
        return {"done": self._done.is_set(), "error": self._error, "results": results}

    def pid(self) -> int:
        return os.getpid()
