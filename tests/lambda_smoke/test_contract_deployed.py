"""The contract as deployed: /openapi.json, /docs and its vendored renderer are served from the code
asset alone (the Redoc bundle is packaged with chalicelib), and the declarations refuse a bad body there."""
from __future__ import annotations

import json

import pytest

from tests.lambda_smoke.events import rest_event


@pytest.fixture(scope="module")
def api(start_function):
    return start_function("siyu-api", "app.app", memory=512, timeout=10)


def get(api, path: str) -> dict:
    reply, _trace = api.invoke(rest_event("GET", path, path))
    assert reply["ok"], reply
    return reply["result"]


def test_the_document_the_reference_and_its_renderer_are_served(api):
    doc = get(api, "/openapi.json")
    assert doc["statusCode"] == 200, doc
    body = json.loads(doc["body"])
    assert body["openapi"] == "3.1.0" and body["servers"] == [{"url": "/api"}]       # the stage prefix
    assert "/pos/{brand_id}/stores/{store_id}/redemptions" in body["paths"]
    page = get(api, "/docs")
    assert page["statusCode"] == 200 and 'src="docs/redoc.standalone.js"' in page["body"]
    script = get(api, "/docs/redoc.standalone.js")
    assert script["statusCode"] == 200 and len(script["body"]) > 1_000_000
    assert script["headers"]["Content-Type"].startswith("application/javascript")


def test_a_declared_schema_refuses_a_bad_body_in_the_package(api, stack):
    # two faults: the domain parse would name `wechat` (empty) first; the schema, run before it, names
    # the retention's type, so this answer proves the declarations are packaged and enforced
    reply, _trace = api.invoke(rest_event(
        "POST", "/admin/brands", "/admin/brands",
        headers={"Authorization": f"Bearer {stack.platform_key}", "Content-Type": "application/json"},
        body=json.dumps({"brand_id": "smoke-contract", "name": "n", "wechat": {}, "coupon_retention_days": "7"})))
    assert reply["ok"], reply
    assert reply["result"]["statusCode"] == 400
    assert json.loads(reply["result"]["body"])["error"]["code"] == "invalid_coupon_retention_days"
