"""AWS clients: one botocore session per process, one client per service, created on first use.

Plain botocore, not boto3: boto3's resource layer is import time we never use. PynamoDB's client is
made from the same session (storage.models), so a cold container loads botocore's endpoint and
partition data once, not once per client (~35 ms each). The endpoint comes from botocore's own
`AWS_ENDPOINT_URL` handling, so the same code talks to AWS or to the local emulator.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

import botocore.session
from botocore.config import Config

# Trimmed service models (siyu_dev/trim_botocore_model.py): botocore parses a whole service model
# per client, and SSM's costs ~40 ms of a cold start for the two operations siyu calls.
BOTODATA = os.path.join(os.path.dirname(__file__), "botodata")

# botocore sessions are not thread-safe while they make clients: every client is made under `lock`.
lock = threading.RLock()
_session: botocore.session.Session | None = None
_clients: dict[str, Any] = {}
_client_hooks: list[Callable[[Any], None]] = []

# Give up on an AWS that is unreachable or silent while the caller can still be told so (503
# unavailable, app.api): two attempts of at most 1 s to connect and 3 s to read, plus botocore's
# backoff (< 1 s), is under 8 s, inside the API's 10 s Lambda timeout; a Lambda timeout would answer
# API Gateway's bare 502 instead. SSM, SQS, EventBridge and Scheduler answer in milliseconds.
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 3.0
TOTAL_ATTEMPTS = 2


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "cn-north-1"


def session() -> botocore.session.Session:
    """The process-wide botocore session, siyu's trimmed service models first. Make clients from it
    only while holding `lock`."""
    global _session
    with lock:
        if _session is None:
            _session = _new_session()
        return _session


def client(service: str):
    """The process-wide botocore client for `service` (thread-safe once created)."""
    found = _clients.get(service)
    if found is not None:
        return found
    with lock:
        if service not in _clients:
            made = session().create_client(
                service, region_name=region(),
                config=Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                              retries={"mode": "standard", "total_max_attempts": TOTAL_ATTEMPTS},
                              max_pool_connections=32))
            for hook in _client_hooks:
                hook(made)
            _clients[service] = made
        return _clients[service]


def _new_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, BOTODATA)
    return session


def on_new_client(hook: Callable[[Any], None]) -> None:
    """Run `hook(client)` for every client made from now on (benchmarks count requests this way)."""
    _client_hooks.append(hook)


def reset_clients() -> None:
    """Forget cached clients (the local stack calls this after it moves the endpoint)."""
    global _session
    with lock:
        _clients.clear()
        _session = None


def partition() -> str:
    """aws, aws-cn, ... for the current region: ARNs are built from this, never from a literal."""
    return session().get_partition_for_region(region())
