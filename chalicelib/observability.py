"""Logger, metrics and tracer shared by the API and the workers.

The tracer pulls in the X-Ray SDK (tens of ms at import), so it is created on first use and only
when tracing is on; local runs and tests never pay for it.
"""
from __future__ import annotations

import contextlib
import os
import threading
from functools import lru_cache
from typing import Iterator

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
    """The Powertools Tracer, imported on first call; None when tracing is off (or, should the layer
    ever lack the X-Ray SDK, off with one warning: tracing is never a reason to fail a request).

    Only botocore is patched: every AWS call becomes a subsegment, while patching everything the SDK
    knows (http.client, requests, sqlite3...) would cost cold-start time for calls traced nowhere."""
    if not tracing_enabled():
        return None
    try:
        from aws_lambda_powertools import Tracer
        return Tracer(auto_patch=True, patch_modules=("botocore",))
    except ImportError:
        logger.warning("tracing is on but the X-Ray SDK is not installed; requests are served untraced",
                       exc_info=True)
        return None


@contextlib.contextmanager
def traced(name: str, **annotations: str) -> Iterator[None]:
    """Run the block in an X-Ray subsegment carrying `annotations` (searchable in the console).

    In Lambda the segment is the function's facade segment, which belongs to Lambda: annotating it
    raises FacadeSegmentMutationException in every sampled request, so annotations go on a subsegment
    of our own. Nothing at all happens when tracing is off."""
    xray = tracer()
    if xray is None:
        yield
        return
    with xray.provider.in_subsegment(name) as subsegment:
        for key, value in annotations.items():
            subsegment.put_annotation(key, value)
        yield
