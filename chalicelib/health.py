"""What `GET /health` answers: can this function serve? Decided from memory, never by a network call.

- Configuration: every resource the API reaches is named by an environment variable that `infra/`
  sets (chalicelib.resources). Missing ones would not fail loudly: the code falls back to the local
  stack's names, so a misconfigured function would talk to tables that do not exist. /health names them.
- Dependencies: a request that met an AWS outage (errors.dependency_outage) records it here; for
  OUTAGE_MEMORY seconds after, /health answers 503 too, so a load balancer or a monitor probing
  /health sees what callers saw without /health itself adding load to a struggling dependency.
"""
from __future__ import annotations

import os
import threading
import time

from chalicelib import resources

OUTAGE_MEMORY = 30.0    # seconds /health keeps reporting an outage after a request last met one

_lock = threading.Lock()
_last_outage: tuple[float, str] | None = None      # (monotonic time, what failed)


def required_configuration() -> list[str]:
    """The environment variables the API needs, from the one description of siyu's resources."""
    return ([t.env for t in resources.TABLES] + [q.env for q in resources.QUEUES]
            + [resources.BUS.env, resources.SCHEDULES.env, resources.SCHEDULES.role_env,
               resources.SECRETS_PREFIX_ENV])


def missing_configuration() -> list[str]:
    return [name for name in required_configuration() if not os.environ.get(name, "").strip()]


def record_outage(what: str, now: float | None = None) -> None:
    global _last_outage
    with _lock:
        _last_outage = (time.monotonic() if now is None else now, what)


def recent_outage(now: float | None = None) -> tuple[float, str] | None:
    """(seconds ago, what failed) if a request met an outage in the last OUTAGE_MEMORY seconds."""
    with _lock:
        last = _last_outage
    if last is None:
        return None
    ago = (time.monotonic() if now is None else now) - last[0]
    return (ago, last[1]) if ago < OUTAGE_MEMORY else None
