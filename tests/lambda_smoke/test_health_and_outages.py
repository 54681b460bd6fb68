"""`/health` means "this function can serve", and an AWS outage is a 503 the caller can retry, as deployed.

Each case runs the deployed API in a child interpreter of its own (a fresh container): one missing
configuration, one whose AWS endpoint refuses connections (the emulator, unreachable).
"""
from __future__ import annotations

import json
import time
import uuid


from tests.lambda_smoke.conftest import closed_port_url
from tests.lambda_smoke.events import rest_event
from tests.lambda_smoke.test_deployed_functions import brand_body


def invoke(fn, event: dict) -> tuple[dict, str]:
    reply, trace = fn.invoke(event)
    assert reply["ok"], reply           # an answer, whatever its status: the function must not crash
    return reply["result"], trace


def error_of(response: dict) -> dict:
    return json.loads(response["body"])["error"]


def aws_calls(xray, trace: str) -> list[str]:
    """The AWS calls a request made (botocore subsegments). Waits for the request's own subsegment,
    which closes (and is emitted) after every call made inside it."""
    deadline = time.monotonic() + 5
    while not any(s.get("name") == "## request" for s in xray.subsegments(trace)):
        assert time.monotonic() < deadline, f"the request's subsegment never arrived ({trace})"
        time.sleep(0.05)
    return [s["name"] for s in xray.subsegments(trace) if s.get("namespace") == "aws"]


def test_health_names_the_missing_configuration_with_503_and_no_aws_call(start_function, xray):
    fn = start_function("siyu-api-misconfigured", "app.app", SIYU_TABLE=None, SIYU_SEND_QUEUE_URL="",
                        SIYU_EVENT_BUS=None)
    response, trace = invoke(fn, rest_event("GET", "/health", "/health"))
    assert response["statusCode"] == 503
    error = error_of(response)
    assert error["code"] == "misconfigured"
    assert error["missing"] == ["SIYU_TABLE", "SIYU_SEND_QUEUE_URL", "SIYU_EVENT_BUS"]
    assert "SIYU_TABLE" in error["message"]
    assert aws_calls(xray, trace) == []


def test_health_is_200_without_an_aws_call_when_configured(start_function, xray):
    fn = start_function("siyu-api-healthy", "app.app")
    response, trace = invoke(fn, rest_event("GET", "/health", "/health"))
    assert (response["statusCode"], json.loads(response["body"])) == (200, {"ok": True})
    assert aws_calls(xray, trace) == []


def test_an_unreachable_aws_answers_503_unavailable_with_retry_after_and_writes_nothing(start_function, stack, xray):
    fn = start_function("siyu-api-outage", "app.app", AWS_ENDPOINT_URL=closed_port_url())
    response, _ = invoke(fn, rest_event("GET", "/health", "/health"))
    assert response["statusCode"] == 200            # nothing has failed yet: /health itself calls nothing

    # a read (the admin key lookup) and a write (a brand creation) while AWS is unreachable
    response, _ = invoke(fn, rest_event("GET", "/admin/{brand_id}", "/admin/any", path_params={"brand_id": "any"},
                                        headers={"Authorization": f"Bearer {stack.platform_key}"}))
    assert response["statusCode"] == 503, response
    assert error_of(response)["code"] == "unavailable"
    assert int(response["headers"]["Retry-After"]) > 0
    new_brand = {**brand_body(), "brand_id": f"outage-{uuid.uuid4().hex[:8]}"}
    response, _ = invoke(fn, rest_event("POST", "/admin/brands", "/admin/brands", body=json.dumps(new_brand),
                                        headers={"Authorization": f"Bearer {stack.platform_key}",
                                                 "Content-Type": "application/json"}))
    assert response["statusCode"] == 503 and error_of(response)["code"] == "unavailable", response

    # /health now reports the outage, still without calling anything
    response, trace = invoke(fn, rest_event("GET", "/health", "/health"))
    assert response["statusCode"] == 503, response
    assert error_of(response)["code"] == "unavailable" and int(response["headers"]["Retry-After"]) > 0
    assert aws_calls(xray, trace) == []

    # logged as an outage, not as a bug
    log = fn.log()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    outages = [e for e in entries if e.get("message") == "dependency outage"]
    assert len(outages) == 2 and {e["level"] for e in outages} == {"WARNING"}, outages
    assert {e["path"] for e in outages} == {"/admin/{brand_id}", "/admin/brands"}
    assert "unhandled error" not in log and "Traceback" not in log

    # and nothing of the refused brand exists once AWS is reachable again
    item = stack.client("dynamodb").get_item(TableName=stack.env["SIYU_TABLE"],
                                             Key={"pk": {"S": f"B#{new_brand['brand_id']}"}, "sk": {"S": "BRAND"}})
    assert "Item" not in item
    params = stack.client("ssm").get_parameters_by_path(Path=f"{stack.env['SIYU_SECRETS_PREFIX']}/"
                                                        f"{new_brand['brand_id']}", Recursive=True)
    assert params["Parameters"] == []


def test_an_aws_that_never_answers_is_a_503_before_the_function_times_out(start_function, stack, silent_endpoint):
    """AWS reachable but silent: botocore must give up (timeouts x attempts) while the API can still
    answer 503, inside its 10 s Lambda timeout (the harness kills an invocation that outlives it)."""
    fn = start_function("siyu-api-silent-aws", "app.app", memory=512, timeout=10, AWS_ENDPOINT_URL=silent_endpoint.url)
    response, _ = invoke(fn, rest_event("GET", "/admin/{brand_id}", "/admin/any", path_params={"brand_id": "any"},
                                        headers={"Authorization": f"Bearer {stack.platform_key}"}))
    assert response["statusCode"] == 503 and error_of(response)["code"] == "unavailable", response
    assert "ReadTimeoutError" in error_of(response)["message"]
