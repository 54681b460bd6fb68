"""Which errors are an AWS outage (503 unavailable, retry later) and which are bugs or refusals."""
from __future__ import annotations

import pytest
from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError,
                                 ReadTimeoutError)
from pynamodb.exceptions import GetError, PutError, TransactWriteError

from chalicelib import health
from chalicelib.errors import dependency_outage


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetItem")


@pytest.mark.parametrize("err", [
    EndpointConnectionError(endpoint_url="https://dynamodb.cn-north-1.amazonaws.com.cn"),
    ConnectTimeoutError(endpoint_url="https://ssm.cn-north-1.amazonaws.com.cn"),
    ReadTimeoutError(endpoint_url="https://sqs.cn-north-1.amazonaws.com.cn"),
    ConnectionClosedError(endpoint_url="https://events.cn-north-1.amazonaws.com.cn"),
    client_error("ProvisionedThroughputExceededException"),
    client_error("ThrottlingException"),
    client_error("RequestLimitExceeded"),
    client_error("ServiceUnavailable", 503),
    client_error("InternalServerError", 500),
    client_error("SomethingNew", 502),
    # PynamoDB's wrapped versions
    GetError("Failed to get item", EndpointConnectionError(endpoint_url="http://x")),
    PutError("Failed to put item", client_error("ProvisionedThroughputExceededException")),
    TransactWriteError("Failed to write transaction items", client_error("ThrottlingException")),
], ids=lambda e: type(e).__name__)
def test_unreachable_or_throttling_aws_is_an_outage(err):
    assert dependency_outage(err)


def test_an_outage_raised_from_is_found_through_the_chain():
    try:
        try:
            raise ReadTimeoutError(endpoint_url="http://x")
        except ReadTimeoutError as inner:
            raise RuntimeError("while saving") from inner
    except RuntimeError as outer:
        assert dependency_outage(outer) == "ReadTimeoutError"


@pytest.mark.parametrize("err", [
    ValueError("a bug"),
    KeyError("a bug"),
    client_error("ConditionalCheckFailedException"),
    client_error("ValidationException"),
    client_error("AccessDeniedException"),
    PutError("Failed to put item", client_error("ConditionalCheckFailedException")),
], ids=lambda e: type(e).__name__)
def test_refusals_and_bugs_are_not_outages(err):
    assert dependency_outage(err) is None


def test_health_remembers_an_outage_for_a_while_only():
    health.record_outage("EndpointConnectionError", now=1000.0)
    assert health.recent_outage(now=1001.0) == (1.0, "EndpointConnectionError")
    assert health.recent_outage(now=1000.0 + health.OUTAGE_MEMORY) is None
