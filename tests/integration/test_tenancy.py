"""Keys and tenant isolation: a brand's key can never read or change another brand."""
from __future__ import annotations

import json

import pytest

from tests.integration.conftest import brand_body


def test_platform_key_creates_brands_and_secrets_are_never_returned(stack, api):
    body = brand_body("secretive")
    r = api.call("POST", "/admin/brands", stack.platform_key, body)
    assert r.status_code == 201
    created = r.json()
    assert created["admin_key"].startswith("sk_brand_")
    shown = json.dumps(created) + api.call("GET", "/admin/secretive", created["admin_key"]).text
    for app in body["wechat"].values():
        for field in ("app_secret", "secret", "token", "encoding_aes_key"):
            if field in app:
                assert app[field] not in shown
    assert created["wechat"]["oa_app_id"] == body["wechat"]["oa"]["app_id"]
    again = api.call("POST", "/admin/brands", stack.platform_key, body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "brand_exists"


def test_keys_are_stored_only_as_hashes(stack, brand):
    from chalicelib.storage.models import ApiKey
    stored = json.dumps([k.attribute_values for k in ApiKey.scan()], default=str)
    assert brand.admin_key not in stored and brand.pos_keys["sz"] not in stored


ISOLATION_ROUTES = [
    ("/admin/{b}/stores", "GET"), ("/admin/{b}/stores", "POST"), ("/admin/{b}/guides", "POST"),
    ("/admin/{b}/channels", "POST"), ("/admin/{b}/channels", "GET"), ("/admin/{b}/members?openid=x", "GET"),
    ("/admin/{b}", "GET"),
]


def _isolation_case(client, a, b, route: str, method: str) -> None:
    path = route.format(b=b.brand_id)
    payload = {"store_id": "new" if route.endswith("stores") else "sz", "name": "n", "guide_id": "g9", "scene": "Z9"}
    if route.endswith("channels"):
        payload.pop("guide_id")
    for key, expected in [(a.admin_key, 403), (a.pos_keys["sz"], 403), (b.pos_keys["sz"], 403),
                          ("sk_brand_forged", 401), (None, 401)]:
        r = client.call(method, path, key, payload if method == "POST" else None)
        assert r.status_code == expected, (route, method, key, r.text)
        assert r.json()["error"]["code"] in ("forbidden", "invalid_key", "missing_key")
    own = client.call(method, path, b.admin_key, payload if method == "POST" else None)
    assert own.status_code == (404 if path.endswith("openid=x") else 201 if method == "POST" else 200), own.text


def test_tenant_isolation_matrix(make_brand, inproc):
    """Every route × every wrong principal, in process: two brands serve the whole matrix (each route's
    own write is distinct), the app answers exactly as over HTTP (next test)."""
    a, b = make_brand("iso"), make_brand("iso")
    for route, method in ISOLATION_ROUTES:
        _isolation_case(inproc, a, b, route, method)


def test_tenant_isolation_over_http(make_brand, api):
    a, b = make_brand("iso"), make_brand("iso")
    _isolation_case(api, a, b, "/admin/{b}/stores", "POST")


def test_only_the_platform_creates_brands(brand, api):
    r = api.call("POST", "/admin/brands", brand.admin_key, brand_body("sneaky"))
    assert r.status_code == 403


REFUSED_ADMIN_WRITES = [
    ("/guides", {"guide_id": "g2", "store_id": "nowhere", "name": "x"}, "unknown_store"),
    ("/guides", {"guide_id": "g1", "store_id": "sz", "name": "dup"}, "guide_exists"),
    ("/guides", {"guide_id": "g3", "store_id": "sz", "name": "x", "wecom_user_id": "li"}, "wecom_user_taken"),
    ("/stores", {"store_id": "sz", "name": "dup"}, "store_exists"),
    ("/channels", {"scene": "S1", "store_id": "sz"}, "channel_exists"),
    ("/channels", {"scene": "S9", "store_id": "nowhere"}, "unknown_store"),
    ("/channels", {"scene": "S9", "store_id": "sz", "guide_id": "nobody"}, "unknown_guide"),
    ("/channels", {"scene": "bad scene", "store_id": "sz"}, "invalid_scene"),
]


@pytest.mark.parametrize("path, body, code", REFUSED_ADMIN_WRITES)
def test_refused_admin_writes_change_nothing(shared_brand, inproc, path, body, code):
    """In process, on one brand for every case (a refusal leaves it as it was)."""
    from tests.integration.conftest import table_items
    before = table_items()
    r = shared_brand.via(inproc).admin("POST", path, body)
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, r.text
    assert table_items() == before


def test_a_refused_admin_write_over_http_changes_nothing(shared_brand):
    from tests.integration.conftest import table_items
    path, body, code = REFUSED_ADMIN_WRITES[1]
    before = table_items()
    r = shared_brand.admin("POST", path, body)
    assert r.status_code == 409 and r.json()["error"]["code"] == code, r.text
    assert table_items() == before


def test_health(api):
    assert api.call("GET", "/health").json() == {"ok": True}
