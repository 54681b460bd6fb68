"""A mini-program session names its member once every identity it carries is linked (links never
change), so a claim, the wallet and the member code read no identity link: the flash-sale claim is one
TransactWriteItems instead of a BatchGetItem and a transaction."""
from __future__ import annotations

import base64
import json

import pytest

from chalicelib.domain.members import settled_member
from tests.integration.conftest import dynamodb_calls


def claims_of(token: str) -> dict:
    payload = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def login(brand, openid: str, unionid: str | None = None) -> dict:
    """The login's session token, as claims and as the token itself (`session`)."""
    token = brand.mp_session(openid, unionid)
    return {"session": token, **claims_of(token)}


def scan(brand, session: str, scene: str = "S1") -> dict:
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/scan", session, json_body={"scene": scene})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def shop(stack, api):
    from tests.integration.conftest import new_brand
    brand = new_brand(stack, api, "sm")
    template = brand.admin("POST", "/coupon-templates", {
        "name": "flash", "kind": "cash_off", "value": 100, "valid_days_after_claim": 1, "total_stock": 50,
        "flash_sale": True, "per_member_limit": 1}).json()["template_id"]
    return brand, template


def test_a_new_shoppers_session_names_no_member_until_the_scan_names_it(shop):
    brand, _template = shop
    first = login(brand, "o_sm_new")
    assert "m" not in claims_of(first["session"])
    scanned = scan(brand, first["session"])
    named = claims_of(scanned["session"])
    assert named["m"] == scanned["member_id"]
    assert named["o"] == "o_sm_new" and named["exp"] == claims_of(first["session"])["exp"]   # same expiry
    # the renamed session works and answers the same member
    r = brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", scanned["session"])
    assert r.status_code == 200, r.text
    # a returning shopper's next login names the member at once
    assert claims_of(login(brand, "o_sm_new")["session"])["m"] == scanned["member_id"]


def test_a_named_sessions_claim_is_one_transaction_and_reads_no_identity(shop, inproc):
    brand, template = shop
    session = scan(brand, login(brand, "o_sm_claim")["session"])["session"]
    via = brand.via(inproc)
    warm = scan(brand, login(brand, "o_sm_warm")["session"])["session"]     # the brand and template, cached
    assert via.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template}/claim", warm).status_code == 201
    with dynamodb_calls() as calls:
        r = via.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template}/claim", session)
    assert r.status_code == 201, r.text
    assert calls == ["TransactWriteItems"]
    member_id = claims_of(session)["m"]
    wallet = brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", session).json()["coupons"]
    assert [c["code"] for c in wallet] == [r.json()["coupon"]["code"]]
    assert brand.member(openid="o_sm_claim")["member_id"] == member_id
    # the old session (naming no member) resolves the same member: the limit of 1 refuses it
    old = login(brand, "o_sm_claim")["session"]
    again = brand.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template}/claim", old)
    assert again.status_code == 409 and again.json()["error"]["code"] == "limit_reached"


def test_a_session_with_an_unlinked_unionid_names_no_member_at_login(shop):
    """The member was made from the mini-program openid alone; a later login brings a unionid not linked
    yet: until a touch links it, the shopper could still resolve to another member through it."""
    brand, _template = shop
    member_id = scan(brand, login(brand, "o_sm_union")["session"])["member_id"]
    with_union = login(brand, "o_sm_union", unionid="u_sm_union")
    assert "m" not in claims_of(with_union["session"])
    r = brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", with_union["session"])
    assert r.status_code == 200, r.text
    scanned = scan(brand, with_union["session"])            # links the unionid to the same member
    assert scanned["member_id"] == member_id and claims_of(scanned["session"])["m"] == member_id
    assert claims_of(login(brand, "o_sm_union", unionid="u_sm_union")["session"])["m"] == member_id


def test_a_session_naming_another_member_is_refused(shop):
    brand, template = shop
    token = scan(brand, login(brand, "o_sm_forge")["session"])["session"]
    payload, mac = token.split(".", 1)
    forged = {**claims_of(token), "m": "m_someone_else"}
    body = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).rstrip(b"=").decode()
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template}/claim", f"{body}.{mac}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"


@pytest.mark.parametrize("found, identities, expected", [
    ({}, [("mp", "o")], None),
    ({("mp", "o"): "m1"}, [("mp", "o")], "m1"),
    ({("mp", "o"): "m1"}, [("unionid", "u"), ("mp", "o")], None),                  # the unionid is not linked
    ({("mp", "o"): "m1", ("unionid", "u"): "m2"}, [("unionid", "u"), ("mp", "o")], "m2"),   # unionid first
])
def test_settled_member_needs_every_identity_linked(found, identities, expected):
    assert settled_member(found, identities) == expected
