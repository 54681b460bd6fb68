"""Count AWS requests with a botocore event hook on every client the process creates (PynamoDB's too)."""
from __future__ import annotations

import collections
import threading

import botocore.session

_installed = False
_lock = threading.Lock()
counts: collections.Counter = collections.Counter()


def _count(event_name: str, **_kwargs) -> None:
    # event_name: before-send.<service>.<Operation>; one per HTTP request, retries included
    _, service, operation = event_name.split(".", 2)
    with _lock:
        counts[f"{service}.{operation}"] += 1


def install() -> None:
    """Hook every botocore client created from now on; call before the code under test makes clients."""
    global _installed
    if _installed:
        return
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-send", _count)
        return client
    botocore.session.Session.create_client = create_client
    _installed = True


class Window:
    """Requests made between enter and exit: `with Window() as w: ...; w.total, w.by_operation`."""

    def __enter__(self) -> "Window":
        with _lock:
            self._start = collections.Counter(counts)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            self.by_operation = collections.Counter({k: v - self._start.get(k, 0) for k, v in counts.items()
                                                     if v - self._start.get(k, 0)})
        self.total = sum(self.by_operation.values())
