"""A small per-container TTL cache: Lambda containers live minutes to hours, so configuration
that changes rarely (brands, keys, secrets, channel codes) is read once per container and minute."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable


class TTLCache:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096):
        self.ttl = ttl_seconds
        self._clock = clock
        self._max = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: Any, load: Callable[[], Any]) -> Any:
        """The cached value, or `load()` (cached unless it returns None, so a miss is retried)."""
        hit = self._data.get(key)
        now = self._clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if value is not None:
            with self._lock:
                if len(self._data) >= self._max:
                    self._data.clear()
                self._data[key] = (now + self.ttl, value)
        return value

    def invalidate(self, key: Any) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
