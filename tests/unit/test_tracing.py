"""Tracing is never a reason to fail a request: off outside Lambda, and off (with a warning) if the
layer ever lacks the X-Ray SDK. Tracing as deployed is proven in tests/lambda_smoke."""
from __future__ import annotations

import sys

import pytest

from chalicelib import observability


@pytest.fixture
def fresh_tracer():
    observability.tracer.cache_clear()
    yield
    observability.tracer.cache_clear()


def test_outside_lambda_there_is_no_tracer_and_traced_blocks_just_run(fresh_tracer, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert observability.tracer() is None
    with observability.traced("## request", path="/health"):
        ran = True
    assert ran


def test_without_the_xray_sdk_requests_are_served_untraced(fresh_tracer, monkeypatch, caplog):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "siyu-api")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    for name in [m for m in sys.modules if m == "aws_xray_sdk" or m.startswith("aws_xray_sdk.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aws_xray_sdk", None)     # import aws_xray_sdk -> ImportError
    assert observability.tracer() is None
    assert [r.levelname for r in caplog.records if "X-Ray SDK is not installed" in r.getMessage()] == ["WARNING"]
    with observability.traced("## request", path="/health"):
        ran = True
    assert ran
