"""The contract's declarations (chalicelib/contract_routes.py): every route has one, the validator
enforces exactly what the document publishes, and a schema refuses only what the domain refuses, with
the domain's code."""
from __future__ import annotations

import hashlib
import inspect
import itertools
import re
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

import app as api_module
from chalicelib import contract, contract_routes
from chalicelib.contract_routes import ROUTES
from chalicelib.domain import coupons as coupon_rules
from chalicelib.domain import guide_tasks as guide_task_rules
from chalicelib.domain import orders as order_rules
from chalicelib.domain import package_codes as package_rules
from chalicelib.domain import tenancy as tenancy_rules
from chalicelib.errors import BadRequest

REGISTERED = {(m, p): entry for p, methods in api_module.app.routes.items() for m, entry in methods.items()}
NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def test_every_registered_route_is_declared_and_every_declaration_is_a_route():
    undeclared = sorted(set(REGISTERED) - set(ROUTES))
    assert not undeclared, ("declare these routes in chalicelib/contract_routes.py ROUTES "
                            f"(see its docstring): {undeclared}")
    stale = sorted(set(ROUTES) - set(REGISTERED))
    assert not stale, f"declarations of routes app.py no longer has: {stale}"


def _view_source(entry) -> str:
    view = entry.view_function
    return inspect.getsource(getattr(view, "__wrapped__", view))


@pytest.mark.parametrize("method,path", sorted(REGISTERED), ids=[f"{m} {p}" for m, p in sorted(REGISTERED)])
def test_a_declared_body_is_one_the_view_reads_through_body(method, path):
    """The check runs inside app.body(): a declared request schema on a view that never calls body()
    would be published and not enforced; a POST view that reads body() undeclared would be enforced
    by nothing."""
    reads_body = "body()" in _view_source(REGISTERED[(method, path)])
    op = ROUTES[(method, path)]
    if op.request is not None or op.headers:
        assert reads_body, f"{method} {path} declares a body/headers its view never checks"
    if method == "POST" and reads_body:
        assert op.request is not None, f"{method} {path} reads a body it does not declare"


def _schemas(value):
    if isinstance(value, dict):
        if "type" in value or "properties" in value or "x-error-code" in value:
            yield value
        for inner in value.values():
            yield from _schemas(inner)


def _declared_schemas():
    for key, op in sorted(ROUTES.items()):
        for schema in [op.request, *op.responses.values(), *(h.schema for h in op.headers)]:
            if schema is not None:
                yield key, schema


def test_declarations_use_only_keywords_the_validator_enforces():
    """What /openapi.json publishes is what app.body() enforces: no keyword the small validator ignores."""
    for key, schema in _declared_schemas():
        for node in _schemas(schema):
            stray = set(node) - contract.KEYWORDS - contract.ANNOTATIONS
            # properties' names are keys of "properties", not keywords
            assert not stray, f"{key}: {stray}"
            jsonschema.Draft202012Validator.check_schema(node)


WRONG = [None, True, 0, -1, 1.5, 3, 100_000_001, "", "x", "A b", "z" * 300, "2026-12-01T00:00:00+08:00", [],
         ["a"], ["sz", "sz"], [{"sku": "s1", "quantity": 1, "unit_price_cents": 5}], [1], {}, {"x": 1}]


def _mutations(example: dict, schema: dict):
    """The example with each declared field in turn set to each WRONG value, or left out; plus an
    unknown field."""
    yield dict(example)
    for name in schema.get("properties", {}):
        for value in WRONG:
            yield {**example, name: value}
        yield {k: v for k, v in example.items() if k != name}
    yield {**example, "surprise": 1}


REQUEST_KEYS = sorted(k for k, op in ROUTES.items() if op.request is not None)


@pytest.mark.parametrize("method,path", REQUEST_KEYS, ids=[f"{m} {p}" for m, p in REQUEST_KEYS])
def test_the_validator_agrees_with_jsonschema(method, path):
    op = ROUTES[(method, path)]
    reference = jsonschema.Draft202012Validator(op.request)
    for body in _mutations(op.request_example or {}, op.request):
        assert (contract.problem(op.request, body) is None) == reference.is_valid(body), body


# Each schema against the domain parse it fronts: whatever the schema refuses, the domain refused
# before the schema existed, with the same code (so no caller sees a new answer).
def _order(body):
    return order_rules.order(body, store_id="sz", now=NOW)


def _refund(body):
    return order_rules.refund(body, order_id="o-1", now=NOW)


def _template(body):
    return coupon_rules.template(body, "tpl-1", now=NOW)


def _channel_patch(body):
    # services.codes.update_channel: the body over the channel's current fields, the path's scene
    current = {"store_id": "sz", "guide_id": None, "source": "qrcode", "tags": [], "welcome_coupon_template_id": None,
               "welcome_message": None, "page": None}
    return tenancy_rules.channel({**current, **body, "scene": "S1"})


def _guide_login(body):
    # services.guides.login's checks before it asks WeCom (the rest needs a brand and WeCom)
    from chalicelib.services import guides
    with pytest.raises(_PastTheParse):
        with _stop_at("chalicelib.services.guides.tenancy.require_brand"):
            guides.login("b", body)


def _member_tags(body):
    from chalicelib.services import guides
    with pytest.raises(_PastTheParse):
        with _stop_at("chalicelib.services.guides.tenancy.require_brand"):
            guides.change_tags("b", {"g": "g1", "w": "li"}, "mbr_1", body)


class _PastTheParse(Exception):
    """The service got past its body checks to its first read."""


def _stop_at(target: str):
    from unittest import mock

    def stop(*_a, **_k):
        raise _PastTheParse()
    return mock.patch(target, stop)


def _guide_task(body):
    return guide_task_rules.spec(body, brand_timezone="Asia/Shanghai", now=NOW)


# Where the schema refuses a value the domain let through, each on purpose (a 400 with the field's
# code, as for any other bad value of that field):
TIGHTENED = {
    # the domain read `tags or []`: 0, "", false and {} passed as "no tags"
    ("/admin/{brand_id}/channels", "tags"),
    ("/admin/{brand_id}/channels/{scene}", "tags"),
    # guide_tasks.spec read `timezone or brand's` and `audience or {}`: falsy non-strings/objects passed
    ("/admin/{brand_id}/guide-tasks", "timezone"),
    ("/admin/{brand_id}/guide-tasks", "audience"),
}

DOMAIN = {
    ("POST", "/pos/{brand_id}/stores/{store_id}/orders"): (_order, {"order_id": "o-1", "amount_cents": 100,
                                                                    "items": [{"sku": "s1", "quantity": 1,
                                                                               "unit_price_cents": 100}]}),
    ("POST", "/pos/{brand_id}/stores/{store_id}/orders/{order_id}/refunds"): (_refund, {"refund_id": "r-1",
                                                                                        "amount_cents": 50}),
    ("POST", "/admin/{brand_id}/coupon-templates"): (_template, {"name": "n", "kind": "cash_off", "value": 100,
                                                                 "valid_days_after_claim": 3,
                                                                 "store_ids": ["sz"]}),
    ("POST", "/admin/{brand_id}/stores"): (tenancy_rules.store, {"store_id": "sz", "name": "n", "city": "c"}),
    ("POST", "/admin/{brand_id}/guides"): (tenancy_rules.guide, {"guide_id": "g", "store_id": "sz", "name": "n",
                                                                 "wecom_user_id": "li"}),
    ("POST", "/admin/{brand_id}/channels"): (tenancy_rules.channel, {"scene": "S1", "tags": ["a"], "store_id": "sz"}),
    ("PATCH", "/admin/{brand_id}/channels/{scene}"): (_channel_patch, {"tags": ["a"], "guide_id": "g1",
                                                                       "source": "poster", "page": "pages/x",
                                                                       "welcome_message": "hi",
                                                                       "welcome_coupon_template_id": "tpl_1"}),
    ("POST", "/admin/{brand_id}/package-codes"): (package_rules.request, {"count": 10, "batch_id": "box-1",
                                                                          "channel": "S1",
                                                                          "reward": {"coupon_template_id": "tpl_1"}}),
    ("POST", "/guide/{brand_id}/login"): (_guide_login, {"code": "c0de", "via": "miniprogram"}),
    ("POST", "/guide/{brand_id}/me/members/{member_id}/tags"): (_member_tags, {"add": ["vip"], "remove": ["new"]}),
    ("POST", "/admin/{brand_id}/guide-tasks"): (_guide_task, {
        "name": "n", "store_ids": ["sz"], "timezone": "Asia/Shanghai",
        "audience": {"tags_any": ["vip"], "tags_all": ["a"], "joined_after": "2026-01-01T00:00:00+08:00"},
        "message": {"text": "hi", "miniprogram": {"title": "t", "appid": "wx1", "page": "p", "pic_media_id": "m"}},
        "send_at": "2026-12-01T10:00:00+08:00", "due_at": "2026-12-02T10:00:00+08:00"}),
}


def _domain_code(parse, body) -> str | None:
    try:
        parse(body)
    except BadRequest as err:
        return err.code
    return None


@pytest.mark.parametrize("method,path", sorted(DOMAIN), ids=[f"{m} {p}" for m, p in sorted(DOMAIN)])
def test_the_schema_refuses_only_what_the_domain_refuses_with_its_code(method, path):
    parse, example = DOMAIN[(method, path)]
    schema = ROUTES[(method, path)].request
    refused = 0
    for body in itertools.chain(_mutations(example, schema), _nested_mutations(example)):
        found = contract.problem(schema, body)
        if found is None:
            continue
        refused += 1
        code, before = contract.refusal(found).code, _domain_code(parse, body)
        if before is None:      # the domain took it: only where the schema deliberately says more
            assert (path, found.path[0]) in TIGHTENED, (body, found.message)
            continue
        assert code == before, (body, found.message)
    assert refused > 10


def _nested_mutations(example: dict):
    """Wrong values one level down (an order line's fields, a template's store ids), and inside an
    object field (a task's message and its mini-program card, a batch's reward) to any depth."""
    for name, value in example.items():
        if isinstance(value, dict):
            for field, bad in itertools.product(list(value) + ["extra"], WRONG[:12]):
                yield {**example, name: {**value, field: bad}}
            for inner in _nested_mutations(value):
                yield {**example, name: inner}
            for field in value:
                yield {**example, name: {k: v for k, v in value.items() if k != field}}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for field, bad in itertools.product(list(value[0]) + ["extra"], WRONG[:12]):
                yield {**example, name: [{**value[0], field: bad}]}
        elif isinstance(value, list):
            for bad in WRONG[:12]:
                yield {**example, name: [bad]}


def test_refusals_keep_the_codes_callers_know():
    orders = ROUTES[("POST", "/pos/{brand_id}/stores/{store_id}/orders")]
    cases = [
        (orders.request, {"order_id": "o", "amount_cents": 1, "x": 1}, "unknown_field"),
        (orders.request, {"order_id": "o"}, "invalid_amount_cents"),
        (orders.request, {"order_id": "o", "amount_cents": 1, "items": [{"sku": "s", "quantity": 0,
                                                                          "unit_price_cents": 1}]}, "invalid_items"),
        (orders.request, {"order_id": "o", "amount_cents": 1, "items": [{"sku": "", "quantity": 1,
                                                                          "unit_price_cents": 1}]}, "invalid_sku"),
        (ROUTES[("POST", "/mp/{brand_id}/login")].request, {"code": ""}, "missing_code"),
        (ROUTES[("POST", "/admin/{brand_id}/coupon-templates")].request,
         {"kind": "gift", "name": "n", "store_ids": ["Not A Slug"]}, "invalid_store_id"),
    ]
    for schema, body, code in cases:
        found = contract.problem(schema, body)
        assert found is not None and contract.refusal(found).code == code, (body, found and found.message)


def test_a_required_header_is_checked_before_the_body():
    op = ROUTES[("POST", "/pos/{brand_id}/stores/{store_id}/redemptions")]
    with pytest.raises(BadRequest) as refused:
        contract.check_request(op, {}, {"order_amount_cents": "x"})
    assert refused.value.code == "missing_idempotency_key"
    with pytest.raises(BadRequest) as refused:
        contract.check_request(op, {"idempotency-key": "k1"}, {"order_amount_cents": "x", "order_id": "o"})
    assert refused.value.code == "invalid_order_amount_cents"
    contract.check_request(op, {"idempotency-key": "k1"}, {"order_amount_cents": 100, "order_id": "o"})


def _document() -> dict:
    contract_routes._documents.clear()
    return contract_routes.document(api_module.app.routes, {"resourcePath": "/openapi.json",
                                                            "path": "/api/openapi.json"})


def test_the_document_is_valid_openapi_3_1_and_lists_every_route_with_its_auth():
    doc = _document()
    validate_openapi(doc)
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api"}]
    published = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert published == set(REGISTERED)
    schemes = doc["components"]["securitySchemes"]
    assert {"platformKey", "brandAdminKey", "posKey", "shopperSession", "wechatSignature"} <= set(schemes)
    assert {op.auth for op in ROUTES.values()} - {None} <= set(schemes)
    redeem = doc["paths"]["/pos/{brand_id}/stores/{store_id}/redemptions"]["post"]
    assert redeem["security"] == [{"posKey": []}]
    assert redeem["requestBody"]["content"]["application/json"]["schema"] is ROUTES[
        ("POST", "/pos/{brand_id}/stores/{store_id}/redemptions")].request      # one source, not a copy
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= next(
        p for p in redeem["parameters"] if p["in"] == "header").items()
    codes = set(redeem["responses"]["400"]["content"]["application/json"]["examples"])
    assert {"missing_idempotency_key", "invalid_order_amount_cents", "invalid_order_id"} <= codes
    assert doc["paths"]["/admin/brands"]["post"]["security"] == [{"platformKey": []}]
    assert doc["paths"]["/mp/{brand_id}/me/coupons"]["get"]["security"] == [{"shopperSession": []}]
    assert doc["paths"]["/wechat/{brand_id}/oa"]["post"]["security"] == [{"wechatSignature": []}]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["operationId"] and "4XX" in op["responses"], (method, path)


def test_the_vendored_renderer_is_the_recorded_file():
    vendor = Path(contract_routes.__file__).parent / "vendor"
    row = next(line for line in (vendor / "VENDORED.md").read_text().splitlines()
               if line.startswith("| redoc/redoc.standalone.js"))
    recorded = re.findall(r"\b[0-9a-f]{64}\b", row)[-1]
    assert hashlib.sha256((vendor / "redoc" / "redoc.standalone.js").read_bytes()).hexdigest() == recorded
    assert contract_routes.renderer().startswith("/*! For license information")


def test_every_documented_example_passes_its_own_schema():
    for key, op in ROUTES.items():
        if op.request_example is not None:
            assert contract.problem(op.request, op.request_example) is None, key
