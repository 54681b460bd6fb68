"""Logger, metrics and tracer shared by the API and the workers.

The tracer pulls in the X-Ray SDK (tens of ms at import), so it is created on first use and only
when tracing is on; local runs and tests never pay for it.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "siyu"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "siyu"),
                  service=os.environ.get("POWERTOOLS_SERVICE_NAME", "siyu"))

_metrics_lock = threading.Lock()     # Metrics is not thread-safe; the sender records from several threads


def count(name: str, value: int = 1) -> None:
    """Add `value` to the Count metric `name` of this invocation."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit="Count", value=value)


def flush_metrics() -> None:
    """Emit this invocation's metrics (EMF) and start afresh; nothing when none were recorded (an
    empty flush only warns). Clearing also when metrics are disabled keeps a warm container from
    piling values up across invocations."""
    with _metrics_lock:
        if metrics.metric_set:
            metrics.flush_metrics()
            metrics.clear_metrics()


def tracing_enabled() -> bool:
    return (os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")
            and "AWS_LAMBDA_FUNCTION_NAME" in os.environ)


@lru_cache(maxsize=1)
def tracer():
    """The Powertools Tracer, imported on first call; None when tracing is off."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer
    return Tracer()
