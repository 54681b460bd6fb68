"""Coupons through HTTP on the local stack: claims under contention, the till, refusals, reversal."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from siyu_dev import phone
from tests.integration.conftest import table_items


def iso(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat()


def make_template(brand, **fields) -> dict:
    body = {"name": "10 off", "kind": "cash_off", "value": 1000, "min_spend_cents": 0,
            "valid_days_after_claim": 30, "per_member_limit": 1, **fields}
    r = brand.admin("POST", "/coupon-templates", body)
    assert r.status_code == 201, r.text
    return r.json()


def member_session(brand, name: str) -> str:
    session = brand.mp_session(f"o_{name}", f"u_{name}")
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/scan", session, {"scene": "S1"})
    assert r.status_code == 200, r.text
    return session


def claim(brand, session, template_id):
    return brand.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template_id}/claim", session)


def redeem(brand, store, code, *, key=None, amount=10_000, order="o-1", till="t1"):
    return brand.api.call("POST", f"/pos/{brand.brand_id}/stores/{store}/redemptions", brand.pos_keys[store],
                          {"code": code, "order_id": order, "order_amount_cents": amount, "till_id": till},
                          headers={"Idempotency-Key": key or uuid.uuid4().hex})


@pytest.fixture
def shopper(brand):
    return member_session(brand, "cathy")


def test_fifty_shoppers_race_for_twenty_coupons(brand):
    template = make_template(brand, total_stock=20, flash_sale=True, per_member_limit=1)
    assert template["stock_shards"] == 13
    sessions = [brand.mp_session(f"o_race{i}", None) for i in range(25)]
    for s in sessions:
        assert brand.api.call("POST", f"/mp/{brand.brand_id}/scan", s, {"scene": "S1"}).status_code == 200
    attempts = sessions * 2                     # every shopper tries twice: 50 concurrent claims
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda s: claim(brand, s, template["template_id"]), attempts))
    won = [a for a in answers if a.status_code == 201]
    refused = {a.json()["error"]["code"] for a in answers if a.status_code != 201}
    assert len(won) == 20 and refused <= {"out_of_stock", "limit_reached"}
    assert all(a.status_code in (201, 409) for a in answers)
    per_member = {}
    for s in sessions:
        per_member[s] = len(brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", s).json()["coupons"])
    assert sum(per_member.values()) == 20 and max(per_member.values()) == 1
    counts = brand.admin("GET", f"/coupon-templates/{template['template_id']}").json()
    assert (counts["issued"], counts["remaining"]) == (20, 0)
    again = claim(brand, sessions[-1], template["template_id"])
    assert again.status_code == 409 and again.json()["error"]["code"] in ("out_of_stock", "limit_reached")


def test_the_same_redemption_ten_times_concurrently_redeems_once_with_ten_identical_answers(brand, shopper, bus):
    template = make_template(brand)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    key = "order-777"
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: redeem(brand, "sz", code, key=key, order="777"), range(10)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert answers[0].json()["discount_cents"] == 1000
    assert brand.admin("GET", f"/coupon-templates/{template['template_id']}").json()["redeemed"] == 1
    assert len(bus.events(brand.brand_id, "coupon.redeemed")) == 1
    reused = redeem(brand, "sz", code, key=key, order="other-order")
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"


def test_two_stores_race_for_one_coupon_and_exactly_one_wins(brand, shopper):
    template = make_template(brand)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda store: redeem(brand, store, code), ["sz", "sh"]))
    assert sorted(a.status_code for a in answers) == [201, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json()["error"]["code"] == "already_redeemed"


def test_redeem_reverse_and_redeem_again(brand, shopper, bus):
    template = make_template(brand)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    first = redeem(brand, "sz", code)
    rid = first.json()["redemption_id"]
    path = f"/pos/{brand.brand_id}/stores/sz/redemptions/{rid}/reversal"
    reversal = brand.api.call("POST", path, brand.pos_keys["sz"])
    assert reversal.status_code == 200 and reversal.json()["coupon"]["state"] == "issued"
    assert brand.api.call("POST", path, brand.pos_keys["sz"]).status_code == 200      # twice: a no-op
    assert redeem(brand, "sz", code).status_code == 201
    counts = brand.admin("GET", f"/coupon-templates/{template['template_id']}").json()
    assert (counts["redeemed"], counts["reversed"]) == (1, 1)
    assert len(bus.events(brand.brand_id, "coupon.reversed")) == 1
    other_store = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sh/redemptions/{rid}/reversal",
                                 brand.pos_keys["sh"])
    assert other_store.status_code == 404


def test_reversal_can_void_the_coupon(brand, shopper):
    template = make_template(brand, reversal_voids=True)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    rid = redeem(brand, "sz", code).json()["redemption_id"]
    brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/redemptions/{rid}/reversal", brand.pos_keys["sz"])
    again = redeem(brand, "sz", code)
    assert again.status_code == 409 and again.json()["error"]["code"] == "reversed"


def test_every_till_refusal_is_reachable_and_changes_nothing(brand, shopper):
    soon = make_template(brand, valid_days_after_claim=None, valid_from=iso(timedelta(days=1)),
                         valid_until=iso(timedelta(days=2)), per_member_limit=5)
    scoped = make_template(brand, store_ids=["sh"], min_spend_cents=5000, per_member_limit=5)
    not_yet = claim(brand, shopper, soon["template_id"]).json()["coupon"]["code"]
    scoped_code = claim(brand, shopper, scoped["template_id"]).json()["coupon"]["code"]
    bogus = "23456789ABCDE"
    from chalicelib.domain.coupons import check_char
    cases = [
        (bogus + check_char(bogus), "sz", 10_000, "unknown_code"),
        (not_yet, "sz", 10_000, "not_yet_valid"),
        (scoped_code, "sz", 10_000, "wrong_store"),
        (scoped_code, "sh", 4_999, "min_spend_not_met"),
    ]
    for code, store, amount, expected in cases:
        before = table_items()
        r = redeem(brand, store, code, amount=amount)
        assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == expected, r.text
        if expected != "unknown_code":      # an unknown code counts toward the store's guard
            assert table_items() == before
    typo = scoped_code[:-1] + ("2" if scoped_code[-1] != "2" else "3")
    r = redeem(brand, "sh", typo)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_code"


def test_expired_coupons_are_refused_and_leave_the_wallet(brand, shopper):
    from chalicelib.storage.coupons import coupon_pk
    from chalicelib.storage.models import Coupon
    template = make_template(brand)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    Coupon(coupon_pk(brand.brand_id, code), "COUPON").update([Coupon.valid_until.set(past),
                                                              Coupon.gsi1sk.set(f"{past}#{code}")])
    r = redeem(brand, "sz", code)
    assert r.status_code == 422 and r.json()["error"]["code"] == "expired"
    assert brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", shopper).json()["coupons"] == []


def test_claim_refusals(brand, shopper):
    closed = make_template(brand, claim_starts_at=iso(timedelta(hours=1)))
    r = claim(brand, shopper, closed["template_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "claim_window_closed"
    once = make_template(brand, per_member_limit=1)
    assert claim(brand, shopper, once["template_id"]).status_code == 201
    r = claim(brand, shopper, once["template_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_reached"
    gone = make_template(brand, total_stock=1, per_member_limit=1)
    assert claim(brand, shopper, gone["template_id"]).status_code == 201
    other = member_session(brand, "dora")
    r = claim(brand, other, gone["template_id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "out_of_stock"
    assert claim(brand, shopper, "tpl_nope").status_code == 404


def test_member_code_lookup_shows_the_coupons_usable_here(brand, shopper):
    anywhere = make_template(brand, per_member_limit=2)
    big_spend = make_template(brand, min_spend_cents=50_000)
    claim(brand, shopper, anywhere["template_id"])
    claim(brand, shopper, big_spend["template_id"])
    code = brand.api.call("GET", f"/mp/{brand.brand_id}/me/member-code", shopper).json()
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/member-lookup", brand.pos_keys["sz"],
                       {"member_code": code["member_code"], "order_amount_cents": 10_000})
    assert r.status_code == 200, r.text
    usable = r.json()["coupons"]
    assert [c["template_id"] for c in usable] == [anywhere["template_id"]] and usable[0]["discount_cents"] == 1000
    forged = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/member-lookup", brand.pos_keys["sz"],
                            {"member_code": code["member_code"][:-1] + ("X" if code["member_code"][-1] != "X" else "Y"),
                             "order_amount_cents": 10_000})       # (one code in 32 already ends in X)
    assert forged.status_code == 404 and forged.json()["error"]["code"] == "invalid_member_code"


def test_brute_force_guard_answers_429_after_many_unknown_codes(brand):
    from chalicelib.domain.coupons import new_code
    answers = [redeem(brand, "sh", new_code()) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [404] * 20
    assert answers[20].status_code == 429 and answers[20].json()["error"]["code"] == "too_many_unknown_codes"
    assert redeem(brand, "sz", new_code()).status_code == 404           # another store is not affected


def test_pos_key_acts_only_for_its_store(brand, shopper):
    template = make_template(brand)
    code = claim(brand, shopper, template["template_id"]).json()["coupon"]["code"]
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sh/redemptions", brand.pos_keys["sz"],
                       {"code": code, "order_id": "x", "order_amount_cents": 100}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 403
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/redemptions", brand.pos_keys["sz"],
                       {"code": code, "order_id": "x", "order_amount_cents": 100})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_idempotency_key"


def test_welcome_coupon_is_issued_once_even_when_the_first_scan_is_retried(brand, stack, bus):
    template = make_template(brand)
    r = brand.admin("POST", "/channels", {"scene": "W1", "store_id": "sz", "source": "welcome_poster",
                                          "welcome_coupon_template_id": template["template_id"]})
    assert r.status_code == 201, r.text
    created = int(time.time())
    for _ in range(3):
        assert brand.subscribe("o_welcome", "W1", create_time=created).status_code == 200
    stack.pump.idle()
    member = brand.member(openid="o_welcome")
    assert [c["template_id"] for c in member["coupons"]] == [template["template_id"]]
    assert len(bus.events(brand.brand_id, "coupon.issued")) == 1
    bad = brand.admin("POST", "/channels", {"scene": "W2", "store_id": "sz", "welcome_coupon_template_id": "tpl_no"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "unknown_coupon_template"
