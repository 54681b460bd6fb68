"""Hostile inputs on every route, in-process (chalice.test.Client against the local stack's emulator):
each is a 4xx in siyu's error shape and leaves the table exactly as it was.

The route table is read from the app, so a new route must be classified here (JSON body or not)."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from chalice.test import Client

import app as api_module
from tests.integration.conftest import brand_body

ROOT = Path(__file__).resolve().parents[2]
# POST routes that never read a body (a body sent to them is ignored); WeChat callbacks are
# XML/JSON from WeChat, signed, and tested with the callbacks.
NO_BODY = {"/mp/{brand_id}/coupon-templates/{template_id}/claim",
           "/admin/{brand_id}/campaigns/{campaign_id}/pause", "/admin/{brand_id}/campaigns/{campaign_id}/resume",
           "/admin/{brand_id}/campaigns/{campaign_id}/cancel",
           "/pos/{brand_id}/stores/{store_id}/redemptions/{redemption_id}/reversal"}


def _future(days: int = 2) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# A valid body for every route that reads one: the hostile cases change one thing in it.
VALID = {
    "/admin/brands": lambda: brand_body(f"hb-{uuid.uuid4().hex[:8]}"),
    "/admin/{brand_id}/stores": lambda: {"store_id": "hs1", "name": "Store", "city": "Shenzhen"},
    "/admin/{brand_id}/guides": lambda: {"guide_id": "hg1", "store_id": "sz", "name": "Wang", "wecom_user_id": "wang"},
    "/admin/{brand_id}/channels": lambda: {"scene": "HS1", "store_id": "sz", "source": "poster", "tags": ["t1"],
                                           "welcome_message": "hello"},
    "/mp/{brand_id}/login": lambda: {"code": "some-code"},
    "/mp/{brand_id}/scan": lambda: {"scene": "S1"},
    "/admin/{brand_id}/coupon-templates": lambda: {"name": "5 off", "kind": "cash_off", "value": 500,
                                                   "valid_days_after_claim": 3},
    "/pos/{brand_id}/stores/{store_id}/member-lookup": lambda: {"member_code": "m_x.1.AAAA",
                                                                 "order_amount_cents": 100},
    "/pos/{brand_id}/stores/{store_id}/redemptions": lambda: {"code": "2345-6789-ABCD-E", "order_id": "o-1",
                                                              "order_amount_cents": 100, "till_id": "t1"},
    "/admin/{brand_id}/campaigns": lambda: {"name": "spring", "audience": {"tags_any": ["vip"]},
                                            "message": {"medium": "mp_subscribe", "template_id": "TPL1",
                                                        "page": "pages/index", "data": {"thing1": {"value": "hi"}}},
                                            "schedule": {"at": _future()}},
    "/mp/{brand_id}/me/subscriptions": lambda: {"accepted": ["TPL1"], "rejected": ["TPL2"]},
    "/pos/{brand_id}/stores/{store_id}/orders": lambda: {
        "order_id": f"o-{uuid.uuid4().hex[:8]}", "amount_cents": 100, "till_id": "t1",
        "items": [{"sku": "tea-1", "name": "tea", "quantity": 1, "unit_price_cents": 100}]},
    "/pos/{brand_id}/stores/{store_id}/orders/{order_id}/refunds": lambda: {"refund_id": "r-1", "amount_cents": 50},
    "/admin/{brand_id}/order-imports": lambda: {
        "orders": [{"order_id": f"o-{uuid.uuid4().hex[:8]}", "amount_cents": 100, "store_id": "sz",
                    "items": [{"sku": "tea-1", "name": "tea", "quantity": 1, "unit_price_cents": 100}]}],
        "refunds": [{"order_id": "o-1", "refund_id": "r-1", "amount_cents": 50}]},
    "/guide/{brand_id}/login": lambda: {"code": "some-code", "via": "oauth"},
    "/guide/{brand_id}/me/members/{member_id}/tags": lambda: {"add": ["vip"], "remove": ["old"]},
    "/admin/{brand_id}/guide-tasks": lambda: {"name": "autumn", "guide_ids": ["g1"], "audience": {"tags_any": ["vip"]},
                                              "message": {"text": "hello", "miniprogram": {
                                                  "title": "new in", "appid": "wxmp1", "page": "pages/index",
                                                  "pic_media_id": "MEDIA1"}},
                                              "send_at": _future(), "due_at": _future(3)},
    "/admin/{brand_id}/package-codes": lambda: {"batch_id": "hpk", "count": 10, "channel": "S1",
                                                "reward": {"coupon_template_id": "tpl_x"}},
    "/admin/{brand_id}/campaigns/preview": lambda: {"audience": {"tags_any": ["vip"]},
                                                    "message": {"medium": "oa_custom", "text": "hi"}},
}


def _post_routes() -> list[str]:
    return sorted(path for path, methods in api_module.app.routes.items()
                  if "POST" in methods and not path.startswith("/wechat/"))


def test_every_post_route_is_classified():
    assert set(_post_routes()) == set(VALID) | NO_BODY


class Caller:
    """The right credentials for each route family, and an in-process client."""

    def __init__(self, stack, brand, client):
        self.stack, self.brand, self.client = stack, brand, client
        self.session = brand.mp_session(f"o_hostile_{uuid.uuid4().hex[:6]}")

    def headers(self, path: str) -> dict:
        if path == "/admin/brands":
            key = self.stack.platform_key
        elif path.startswith("/admin/"):
            key = self.brand.admin_key
        elif path.startswith("/pos/"):
            key = self.brand.pos_keys["sz"]
        elif path.startswith("/guide/"):
            key = self.guide_session()
        else:
            key = self.session
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex}

    def guide_session(self) -> str:
        """The brand's guide li, signed in through the simulator's WeCom login: made before a case
        counts the table's items (the login stores the brand's WeCom access token)."""
        if getattr(self, "_guide", None) is None:
            from tests.integration.test_guide_workbench import guide_session
            self._guide = guide_session(self.brand, "li")
        return self._guide

    def call(self, method: str, route: str, body: bytes | None = None, **params):
        values = {"brand_id": self.brand.brand_id, "store_id": "sz", "order_id": "o-1",
                  "member_id": "m_aaaaaaaaaaaaaaaa", **params}
        path = route.format(**values)
        return getattr(self.client.http, method.lower())(path, headers=self.headers(route), body=body)


@pytest.fixture(scope="module")
def caller(stack, shared_brand):
    """One brand, shopper and guide session for the module: each case is a refusal that must change
    nothing (and checks that it did not), so a brand per case (six requests, and logins) bought nothing."""
    with Client(api_module.app, stage_name="local", project_dir=str(ROOT)) as client:
        caller = Caller(stack, shared_brand, client)
        caller.guide_session()          # before any case counts the table's items
        yield caller


def table_items() -> int:
    """Items in the main table, counted in the emulator's memory (this process runs it): the same
    figure as conftest.table_items' Scan, without paging through every test's data for each case."""
    from chalicelib.storage.models import Item
    from siyu_dev.key_limits import table_named
    table = table_named(Item.Meta.table_name)
    partitions = list(table.items.values())
    return sum(len(p) for p in partitions) if table.range_key_attr else len(partitions)


def _refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.body
    error = json.loads(response.body)["error"]
    assert error["code"] == code and error["message"]


DEEP = {"list": b"[" * 5000 + b"]" * 5000, "object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "deep but decodable": b'{"name":' + b"[" * 200 + b"]" * 200 + b"}"}


@pytest.mark.parametrize("route", sorted(VALID))
@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deeply_nested_json_is_malformed_on_every_json_route(caller, route, shape):
    before = table_items()
    _refused(caller.call("POST", route, DEEP[shape]), 400, "malformed_json")
    assert table_items() == before


def _string_paths(value, path=()):
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _string_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _string_paths(v, path + (i,))


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


SURROGATE_CASES = [(route, path) for route in sorted(VALID) for path in _string_paths(VALID[route]())]


def test_surrogate_cases_cover_every_free_text_field():
    assert len(SURROGATE_CASES) >= 30 and {r for r, _ in SURROGATE_CASES} == set(VALID)


@pytest.mark.parametrize("route, path", SURROGATE_CASES, ids=[f"{r}:{'.'.join(map(str, p))}"
                                                             for r, p in SURROGATE_CASES])
def test_a_lone_surrogate_in_any_string_field_is_refused(caller, route, path):
    body = _replace(VALID[route](), path, "ok\ud800")
    before = table_items()
    _refused(caller.call("POST", route, json.dumps(body).encode()), 400, "malformed_json")   # "\ud800" escaped
    assert table_items() == before


@pytest.mark.parametrize("raw", [b'{"name": "\xed\xa0\x80"}',            # a surrogate encoded as raw bytes
                                 b'{"\\udc00": 1}',                        # in a key
                                 b'{"name": NaN}'])
def test_other_not_quite_json_is_refused(caller, raw):
    _refused(caller.call("POST", "/admin/{brand_id}/stores", raw), 400, "malformed_json")


def test_the_valid_bodies_are_accepted_so_the_cases_above_test_only_their_change(caller):
    """Guards the guard: if the valid bodies were refused anyway, the cases above would prove nothing."""
    r = caller.call("POST", "/admin/{brand_id}/coupon-templates",
                    json.dumps(VALID["/admin/{brand_id}/coupon-templates"]()).encode())
    assert r.status_code == 201, r.body
    r = caller.call("POST", "/admin/{brand_id}/campaigns", json.dumps(VALID["/admin/{brand_id}/campaigns"]()).encode())
    assert r.status_code == 201, r.body
    before = table_items()
    r = caller.call("POST", "/admin/{brand_id}/stores", json.dumps(VALID["/admin/{brand_id}/stores"]()).encode())
    assert r.status_code == 201, r.body
    assert table_items() > before                  # and the count the refusals are checked with sees writes
    r = caller.call("POST", "/pos/{brand_id}/stores/{store_id}/orders",
                    json.dumps(VALID["/pos/{brand_id}/stores/{store_id}/orders"]()).encode())
    assert r.status_code == 201, r.body
    r = caller.call("POST", "/admin/{brand_id}/order-imports",
                    json.dumps(VALID["/admin/{brand_id}/order-imports"]()).encode())
    assert r.status_code == 200 and json.loads(r.body)["accepted"] == 1, r.body


# ---- cursors and ids in paths and query strings ------------------------------------------------

def _campaign(caller) -> str:
    r = caller.call("POST", "/admin/{brand_id}/campaigns", json.dumps(VALID["/admin/{brand_id}/campaigns"]()).encode())
    assert r.status_code == 201, r.body
    return json.loads(r.body)["campaign_id"]


@pytest.mark.parametrize("cursor", [b"[" * 5000, b'{"shard":' * 5000, b'"\\ud800"', b"NaN"])
def test_a_hostile_deliveries_cursor_is_an_invalid_cursor(caller, cursor):
    campaign = _campaign(caller)
    text = base64.urlsafe_b64encode(cursor).decode()
    r = caller.client.http.get(f"/admin/{caller.brand.brand_id}/campaigns/{campaign}/deliveries?cursor={text}",
                               headers=caller.headers("/admin/x"))
    _refused(r, 400, "invalid_cursor")


@pytest.mark.parametrize("limit", ["٢", "²", "-1", "1e3", " 5"])
def test_a_deliveries_limit_takes_ascii_digits_only(caller, limit):
    campaign = _campaign(caller)
    r = caller.client.http.get(f"/admin/{caller.brand.brand_id}/campaigns/{campaign}/deliveries?limit={limit}",
                               headers=caller.headers("/admin/x"))
    _refused(r, 400, "invalid_cursor")


LONG = "x" * 3000
PATHS = [  # (method, path, expected status, code): ids no siyu key can hold, refused before any read
    ("GET", "/admin/{LONG}", 404, "unknown_brand"),
    ("GET", "/admin/{brand_id}/coupon-templates/{LONG}", 404, "unknown_coupon_template"),
    ("POST", "/mp/{brand_id}/coupon-templates/{LONG}/claim", 404, "unknown_coupon_template"),
    ("GET", "/admin/{brand_id}/campaigns/{LONG}", 404, "unknown_campaign"),
    ("GET", "/admin/{brand_id}/campaigns/{LONG}/deliveries", 404, "unknown_campaign"),
    ("POST", "/admin/{brand_id}/campaigns/{LONG}/pause", 404, "unknown_campaign"),
    ("POST", "/pos/{brand_id}/stores/sz/redemptions/{LONG}/reversal", 404, "unknown_redemption"),
    ("POST", "/pos/{brand_id}/stores/{LONG}/redemptions", 404, "unknown_store"),
    ("POST", "/pos/{brand_id}/stores/sz/orders/{LONG}/refunds", 404, "unknown_order"),
    ("POST", "/pos/{brand_id}/stores/sz/orders/o%231/refunds", 404, "unknown_order"),
    ("GET", "/mp/{LONG}/me/coupons", 404, "unknown_brand"),
    ("GET", "/admin/{brand_id}/members?openid={LONG}", 400, "invalid_openid"),
    ("GET", "/admin/{brand_id}/members?unionid={LONG}", 400, "invalid_unionid"),
    ("GET", "/admin/{brand_id}/members?external_userid=a%0A", 400, "invalid_external_userid"),
    ("GET", "/admin/abc%0A", 404, "unknown_brand"),
]


@pytest.mark.parametrize("method, path, status, code", PATHS)
def test_ids_no_key_can_hold_are_refused_at_the_edge(caller, method, path, status, code):
    url = path.format(LONG=LONG, brand_id=caller.brand.brand_id)
    auth = "/pos/" if url.startswith("/pos/") else "/mp/" if url.startswith("/mp/") else "/admin/x"
    r = getattr(caller.client.http, method.lower())(url, headers=caller.headers(auth), body=b"{}")
    _refused(r, status, code)
