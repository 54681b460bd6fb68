"""Hostile inputs over HTTP, one case per concern (the exhaustive cases run in-process in
test_hostile_inputs_routes.py and tests/unit/test_hostile_inputs_rules.py): each is a 4xx in
siyu's error shape, and the table is unchanged."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.integration.conftest import AES, brand_body, table_items


def refused(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_deeply_nested_json_is_malformed(brand):
    before = table_items()
    r = brand.api.call("POST", f"/admin/{brand.brand_id}/stores", brand.admin_key, data=b"[" * 5000,
                       headers={"Content-Type": "application/json"})
    refused(r, 400, "malformed_json")
    assert table_items() == before


def test_a_lone_surrogate_in_a_brand_name_is_refused(stack, api):
    body = json.dumps({**brand_body("surrogate-1"), "name": "Brand \ud800"})     # sent as the escape \ud800
    before = table_items()
    r = api.call("POST", "/admin/brands", stack.platform_key, data=body.encode(),
                 headers={"Content-Type": "application/json"})
    refused(r, 400, "malformed_json")
    assert table_items() == before


def test_an_aes_key_ending_in_a_newline_is_refused(stack, api):
    body = brand_body("newline-aes")
    body["wechat"]["oa"]["encoding_aes_key"] = AES["oa"] + "\n"
    before = table_items()
    refused(api.call("POST", "/admin/brands", stack.platform_key, body), 400, "invalid_wechat_oa_encoding_aes_key")
    assert table_items() == before


def test_a_coupon_valid_until_the_end_of_the_calendar_is_refused(brand):
    before = table_items()
    r = brand.admin("POST", "/coupon-templates", {"name": "forever", "kind": "cash_off", "value": 100,
                                                  "valid_until": "9999-12-31T00:00:00Z"})
    refused(r, 400, "invalid_valid_until")
    assert table_items() == before


def test_a_campaign_at_the_calendar_edge_is_refused(brand):
    r = brand.admin("POST", "/campaigns", {"message": {"template_id": "T"},
                                           "schedule": {"at": "9999-12-31T23:59:59-12:00"}})
    refused(r, 400, "invalid_at")


def test_a_cron_with_a_unicode_digit_is_refused_not_scheduled(brand):
    before = table_items()
    r = brand.admin("POST", "/campaigns", {"message": {"template_id": "T"}, "schedule": {"cron": "0 ٢ * * ? *"}})
    refused(r, 400, "invalid_cron")
    assert table_items() == before


def test_a_member_code_with_a_unicode_digit_is_unknown(brand):
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/member-lookup", brand.pos_keys["sz"],
                       {"member_code": "m_abc.².ABCDEFGHJK", "order_amount_cents": 100})
    refused(r, 404, "invalid_member_code")


def test_ids_beyond_dynamodbs_key_size_are_refused_at_the_edge(brand):
    refused(brand.admin("GET", "/members?openid=" + "o" * 3000), 400, "invalid_openid")
    refused(brand.api.call("GET", "/admin/" + "b" * 3000, brand.admin_key), 404, "unknown_brand")
    refused(brand.admin("GET", "/coupon-templates/" + "t" * 3000), 404, "unknown_coupon_template")


def test_a_flash_sale_faster_than_siyu_serves_is_refused_and_100k_is_served(brand):
    start = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    body = {"name": "秒杀", "kind": "cash_off", "value": 100, "valid_days_after_claim": 1, "flash_sale": True,
            "total_stock": 10_000, "claim_starts_at": start}
    refused(brand.admin("POST", "/coupon-templates", {**body, "expected_claims_per_second": 250_000}), 400,
            "flash_sale_too_fast")
    r = brand.admin("POST", "/coupon-templates", {**body, "expected_claims_per_second": 100_000})
    assert r.status_code == 201 and r.json()["stock_shards"] == 125, r.text
