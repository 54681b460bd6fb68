"""The scoreboard on the local stack: a brand with two stores (sz, sh), two guides (g1 at sz, g2 at sh)
and three channels (S1: sz/g1, S2: sh, S3: sh/g2) onboards members through each (and one with no
channel), records orders (walk-in and member, first and repeat, POS and import, one replayed, one
refunded), and every metric of GET /admin/{brand}/stats is checked against numbers worked out by hand
for by=day|store|guide|channel.

The story (T: today in Asia/Shanghai, Y: the day before):
  members   A scans S1 (sz, g1)   B scans S2 (sh, -)   C scans S3 (sh, g2)   D joins with no channel
  orders    1 POS sz  walk-in            2,500  T
            2 POS sz  A (first)         10,000  T   (sent twice under one Idempotency-Key)
            3 POS sh  A (second), g2     4,000  T
            4 POS sh  B (first)          3,000  T   refunded 1,000 at sh, T
            5 import online, C (first)   6,000  Y   (imported twice: a duplicate)
            6 import online, walk-in     1,500  T
  coupons   D, A and B claim a 10-yuan coupon (T); A redeems hers at sh for order 3 (linked);
            B redeems his at sh and the till reverses it (net nothing)
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.scoreboard import METRICS
from tests.integration.conftest import new_brand
from tests.integration.test_coupons import claim, make_template, redeem
from tests.integration.test_orders import member_code, order, refund

TZ = ZoneInfo("Asia/Shanghai")


def scan(brand, name: str, scene: str) -> str:
    session = brand.mp_session(f"o_{name}", f"u_{name}")
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/scan", session, {"scene": scene})
    assert r.status_code == 200 and r.json()["created"], r.text
    return session


def ok(r, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(scope="module")
def story(stack, api):
    brand = new_brand(stack, api, "score")
    ok(brand.admin("POST", "/guides", {"guide_id": "g2", "store_id": "sh", "name": "Wang"}))
    ok(brand.admin("POST", "/channels", {"scene": "S3", "store_id": "sh", "guide_id": "g2", "source": "guide_card"}))
    a, b, c = scan(brand, "a", "S1"), scan(brand, "b", "S2"), scan(brand, "c", "S3")
    d = brand.mp_session("o_d", "u_d")
    template = make_template(brand)
    ok(claim(brand, d, template["template_id"]))                   # D joins by claiming, with no channel
    c_id = brand.member(openid="o_c")["member_id"]
    now = datetime.now(timezone.utc)
    yesterday = (now - timedelta(days=1)).isoformat()

    code_a = ok(claim(brand, a, template["template_id"]))["coupon"]["code"]
    code_b = ok(claim(brand, b, template["template_id"]))["coupon"]["code"]
    redemption_a = ok(redeem(brand, "sh", code_a, amount=4000, order="o3"))["redemption_id"]
    redemption_b = ok(redeem(brand, "sh", code_b, amount=3000, order="o4"))["redemption_id"]
    reversal = f"/pos/{brand.brand_id}/stores/sh/redemptions/{redemption_b}/reversal"
    ok(api.call("POST", reversal, brand.pos_keys["sh"]), 200)
    ok(api.call("POST", reversal, brand.pos_keys["sh"]), 200)      # reversing twice is a no-op

    ok(order(brand, {"order_id": "o1", "amount_cents": 2500}, store="sz"))
    body = {"order_id": "o2", "amount_cents": 10_000, "member_code": member_code(brand, a)}
    first = ok(order(brand, body, store="sz", key="till-o2"))
    assert ok(order(brand, body, store="sz", key="till-o2")) == first == {
        "order_id": "o2", "member_id": first["member_id"], "member_order_number": 1}
    assert ok(order(brand, {"order_id": "o3", "amount_cents": 4000, "guide_id": "g2", "redemption_ids": [redemption_a],
                            "member_code": member_code(brand, a)}, store="sh"))["member_order_number"] == 2
    ok(order(brand, {"order_id": "o4", "amount_cents": 3000, "member_code": member_code(brand, b)}, store="sh"))
    ok(refund(brand, "o4", "r4", 1000, store="sh"))
    rows = {"orders": [{"order_id": "o5", "amount_cents": 6000, "store_id": None, "member_id": c_id,
                        "occurred_at": yesterday},
                       {"order_id": "o6", "amount_cents": 1500, "store_id": None}]}
    assert ok(brand.admin("POST", "/order-imports", rows), 200)["accepted"] == 2
    assert ok(brand.admin("POST", "/order-imports", rows), 200)["duplicates"] == 2
    today = now.astimezone(TZ).date()
    brand.template_id = template["template_id"]
    return brand, today.isoformat(), (today - timedelta(days=1)).isoformat()


def stats(brand, by: str, start: str, end: str) -> dict:
    return ok(brand.admin("GET", f"/stats?from={start}&to={end}&by={by}"), 200)


def metrics(**nonzero) -> dict:
    return {name: nonzero.get(name, 0) for name in METRICS}


def counted(row: dict) -> dict:
    return {name: row[name] for name in METRICS}


def rows_of(answer: dict) -> dict:
    return {row["key"]: counted(row) for row in answer["rows"]}


TOTALS = metrics(new_members=4, converted_members=3, repeat_members=1, cohort_gmv_cents=22_000,
                 orders=6, gmv_cents=26_000, refunded_cents=1000, member_orders=4, member_gmv_cents=22_000,
                 first_orders=3, repeat_orders=1, coupons_issued=3, coupons_redeemed=1, discount_cents=1000)


def test_by_day(story):
    brand, today, yesterday = story
    answer = stats(brand, "day", yesterday, today)
    assert (answer["from"], answer["to"], answer["by"], answer["timezone"]) == (yesterday, today, "day",
                                                                                "Asia/Shanghai")
    assert rows_of(answer) == {
        yesterday: metrics(orders=1, gmv_cents=6000, member_orders=1, member_gmv_cents=6000, first_orders=1),
        today: metrics(new_members=4, converted_members=3, repeat_members=1, cohort_gmv_cents=22_000,
                       orders=5, gmv_cents=20_000, refunded_cents=1000, member_orders=3, member_gmv_cents=16_000,
                       first_orders=2, repeat_orders=1, coupons_issued=3, coupons_redeemed=1, discount_cents=1000)}
    assert counted(answer["totals"]) == TOTALS
    totals = answer["totals"]
    assert (totals["conversion_rate"], totals["repeat_rate"], totals["member_share"], totals["redemption_rate"]) == (
        0.75, 0.3333, 0.8462, 0.3333)
    # the day before alone: no one joined then, so no conversion to speak of
    only = stats(brand, "day", yesterday, yesterday)
    assert [r["key"] for r in only["rows"]] == [yesterday]
    assert only["totals"]["conversion_rate"] is None and only["totals"]["member_share"] == 1.0


def test_by_store(story):
    brand, today, yesterday = story
    answer = stats(brand, "store", yesterday, today)
    assert rows_of(answer) == {
        "sz": metrics(new_members=1, converted_members=1, repeat_members=1, cohort_gmv_cents=14_000,
                      orders=2, gmv_cents=12_500, member_orders=1, member_gmv_cents=10_000, first_orders=1,
                      coupons_issued=1),
        "sh": metrics(new_members=2, converted_members=2, cohort_gmv_cents=8000,
                      orders=2, gmv_cents=6000, refunded_cents=1000, member_orders=2, member_gmv_cents=6000,
                      first_orders=1, repeat_orders=1, coupons_issued=1, coupons_redeemed=1, discount_cents=1000),
        None: metrics(new_members=1, orders=2, gmv_cents=7500, member_orders=1, member_gmv_cents=6000,
                      first_orders=1, coupons_issued=1)}
    assert counted(answer["totals"]) == TOTALS
    assert [r["key"] for r in answer["rows"]][-1] is None


def test_by_guide(story):
    """An order's guide is its own (o3: g2 at sh), else the member's first-touch guide (o2: A's g1)."""
    brand, today, yesterday = story
    answer = stats(brand, "guide", yesterday, today)
    assert rows_of(answer) == {
        "g1": metrics(new_members=1, converted_members=1, repeat_members=1, cohort_gmv_cents=14_000,
                      orders=1, gmv_cents=10_000, member_orders=1, member_gmv_cents=10_000, first_orders=1,
                      coupons_issued=1, coupons_redeemed=1, discount_cents=1000),
        "g2": metrics(new_members=1, converted_members=1, cohort_gmv_cents=6000,
                      orders=2, gmv_cents=10_000, member_orders=2, member_gmv_cents=10_000, first_orders=1,
                      repeat_orders=1),
        None: metrics(new_members=2, converted_members=1, cohort_gmv_cents=2000,
                      orders=3, gmv_cents=6000, refunded_cents=1000, member_orders=1, member_gmv_cents=2000,
                      first_orders=1, coupons_issued=2)}
    assert counted(answer["totals"]) == TOTALS


def test_by_channel(story):
    brand, today, yesterday = story
    answer = stats(brand, "channel", yesterday, today)
    assert rows_of(answer) == {
        "S1": metrics(new_members=1, converted_members=1, repeat_members=1, cohort_gmv_cents=14_000,
                      orders=2, gmv_cents=14_000, member_orders=2, member_gmv_cents=14_000, first_orders=1,
                      repeat_orders=1, coupons_issued=1, coupons_redeemed=1, discount_cents=1000),
        "S2": metrics(new_members=1, converted_members=1, cohort_gmv_cents=2000,
                      orders=1, gmv_cents=2000, refunded_cents=1000, member_orders=1, member_gmv_cents=2000,
                      first_orders=1, coupons_issued=1),
        "S3": metrics(new_members=1, converted_members=1, cohort_gmv_cents=6000,
                      orders=1, gmv_cents=6000, member_orders=1, member_gmv_cents=6000, first_orders=1),
        None: metrics(new_members=1, orders=2, gmv_cents=4000, coupons_issued=1)}
    assert counted(answer["totals"]) == TOTALS
    assert answer["rows"][0]["conversion_rate"] == 1.0 and answer["rows"][0]["repeat_rate"] == 1.0
    assert answer["rows"][0]["redemption_rate"] == 1.0 and answer["rows"][1]["redemption_rate"] == 0.0


def test_a_range_before_anything_happened_is_empty(story):
    brand, _, yesterday = story
    answer = stats(brand, "store", "2020-01-01", "2020-12-31")
    assert answer["rows"] == [] and answer["totals"] == {**metrics(), "conversion_rate": None, "repeat_rate": None,
                                                          "member_share": None, "redemption_rate": None}


@pytest.mark.parametrize("query,code", [
    ("from=2026-01-01&to=2026-13-01", "invalid_to"),
    ("from=2026-01-01", "invalid_to"),
    ("from=2024-01-01&to=2025-01-01", "invalid_range"),
    ("from=2026-01-02&to=2026-01-01", "invalid_range"),
    ("from=%D9%A2026-01-01&to=2026-01-01", "invalid_from"),
    ("from=2026-01-01&to=2026-01-01&by=sku", "invalid_by"),
])
def test_bad_queries_are_400(story, query, code):
    brand = story[0]
    r = brand.admin("GET", f"/stats?{query}")
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_only_the_brands_admin_reads_its_stats(story, api):
    brand = story[0]
    r = api.call("GET", f"/admin/{brand.brand_id}/stats?from=2026-01-01&to=2026-01-01", brand.pos_keys["sz"])
    assert r.status_code in (401, 403), r.text


def test_a_flash_sale_claim_counts_in_the_day_row_only(make_brand):
    """A flash-sale claim stays a ~5-item transaction (sized for 100,000 claims/s): it adds to the
    day's coupons_issued, on its stock shard's counter item, not to the store/guide/channel rows."""
    brand = make_brand("flash")
    template = make_template(brand, flash_sale=True, total_stock=1000, expected_claims_per_second=100_000)
    code = ok(claim(brand, scan(brand, "f", "S1"), template["template_id"]))["coupon"]["code"]
    today = datetime.now(TZ).date().isoformat()
    assert stats(brand, "day", today, today)["totals"]["coupons_issued"] == 1
    by_store = stats(brand, "store", today, today)
    assert by_store["totals"]["coupons_issued"] == 0 and by_store["totals"]["new_members"] == 1
    # its redemption still counts by the member's first touch (read from the member at the till)
    ok(redeem(brand, "sh", code))
    by_channel = {r["key"]: r for r in stats(brand, "channel", today, today)["rows"]}
    assert (by_channel["S1"]["coupons_redeemed"], by_channel["S1"]["discount_cents"]) == (1, 1000)
    assert {r["key"]: r["coupons_redeemed"] for r in stats(brand, "store", today, today)["rows"]} == {"sz": 0, "sh": 1}


def test_a_coupon_templates_stats_by_day_and_store(story):
    """The story's template: issued to D (no store), A (sz) and B (sh) by first touch; A's redeemed at
    sh and carried by order 3 (4,000); B's redeemed at sh and reversed (nothing)."""
    brand, today, yesterday = story
    path = f"/coupon-templates/{brand.template_id}/stats"
    by_day = ok(brand.admin("GET", f"{path}?by=day"), 200)            # default: the 31 days ending today
    assert by_day["from"] == (datetime.fromisoformat(today) - timedelta(days=30)).date().isoformat()
    assert by_day["rows"] == [{"key": today, "issued": 3, "redeemed": 1, "discount_cents": 1000,
                               "order_gmv_cents": 4000, "redemption_rate": 0.3333}]
    by_store = ok(brand.admin("GET", f"{path}?by=store&from={yesterday}&to={today}"), 200)
    none = {"redeemed": 0, "discount_cents": 0, "order_gmv_cents": 0, "redemption_rate": 0.0}
    assert by_store["rows"] == [
        {"key": "sh", "issued": 1, "redeemed": 1, "discount_cents": 1000, "order_gmv_cents": 4000,
         "redemption_rate": 1.0},
        {"key": "sz", "issued": 1, **none},
        {"key": None, "issued": 1, **none}]
    assert by_store["totals"] == by_day["totals"] == {k: v for k, v in by_day["rows"][0].items() if k != "key"}
    assert brand.admin("GET", f"{path}?by=guide").json()["error"]["code"] == "invalid_by"
    r = brand.admin("GET", "/coupon-templates/tpl_nosuchtemplate/stats?by=day")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_coupon_template", r.text
