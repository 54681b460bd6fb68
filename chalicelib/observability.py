"""Logger, metrics and tracer shared by the API and the workers.

The tracer pulls in the X-Ray SDK (tens of ms at import), so it is created on first use and only
when tracing is on; local runs and tests never pay for it.
"""
from __future__ import annotations

import os
from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "siyu"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "siyu"),
                  service=os.environ.get("POWERTOOLS_SERVICE_NAME", "siyu"))


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
