"""Coupon rules on plain data: codes, validity, discounts, refusals, sharding, member codes."""
import random
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import coupons as rules
from chalicelib.errors import BadRequest

NOW = datetime(2026, 11, 11, 2, 0, tzinfo=timezone.utc)
BASE = {"name": "10 off", "kind": "cash_off", "value": 1000, "valid_days_after_claim": 30}


def test_codes_are_long_random_and_in_the_read_aloud_alphabet():
    codes = {rules.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == 14 and not set(code) & set("01OI") and rules.normalize_code(code) == code
    assert rules.RANDOM_CHARS * 5 >= 60


def test_check_character_catches_every_single_substitution():
    rng = random.Random(3)
    for _ in range(300):
        code = rules.new_code(randbelow=rng.randrange)
        for i in range(len(code)):
            for ch in rules.ALPHABET:
                if ch != code[i]:
                    assert rules.normalize_code(code[:i] + ch + code[i + 1:]) is None


def test_check_character_catches_adjacent_transpositions_except_2_and_Z():
    rng = random.Random(4)
    for _ in range(2000):
        code = rules.new_code(randbelow=rng.randrange)
        for i in range(len(code) - 1):
            a, b = code[i], code[i + 1]
            if a == b or {a, b} == {"2", "Z"}:
                continue
            assert rules.normalize_code(code[:i] + b + a + code[i + 2:]) is None


def test_codes_tolerate_how_people_type_them():
    code = rules.new_code()
    assert rules.normalize_code(f" {code[:5].lower()}-{code[5:]} ") == code
    for bad in (None, 12, "", code[:-1], code + "A", code.replace(code[0], "0")):
        assert rules.normalize_code(bad) is None


@pytest.mark.parametrize("change, code", [
    ({"kind": "bogo"}, "invalid_kind"),
    ({"value": 0}, "invalid_value"),
    ({"kind": "percent_off", "value": 100}, "invalid_value"),
    ({"value": "10"}, "invalid_value"),
    ({"valid_days_after_claim": None}, "invalid_validity"),
    ({"valid_until": "2026-12-01T00:00:00+08:00"}, "invalid_validity"),
    ({"valid_days_after_claim": None, "valid_from": "2026-12-02T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z"},
     "invalid_validity"),
    ({"valid_days_after_claim": None, "valid_until": "2026-12-01T00:00:00"}, "invalid_valid_until"),
    ({"total_stock": 0}, "invalid_total_stock"),
    ({"flash_sale": True}, "invalid_total_stock"),
    ({"per_member_limit": 0}, "invalid_per_member_limit"),
    ({"store_ids": []}, "invalid_store_ids"),
    ({"claim_starts_at": "2026-12-02T00:00:00Z", "claim_ends_at": "2026-12-01T00:00:00Z"}, "invalid_claim_window"),
    ({"min_spend_cents": -1}, "invalid_min_spend_cents"),
])
def test_bad_templates_are_refused_with_a_reason(change, code):
    with pytest.raises(BadRequest) as err:
        rules.template({**BASE, **change}, "tpl_x")
    assert err.value.code == code


def test_validity_absolute_or_relative_to_the_claim():
    relative = rules.template(BASE, "t")
    assert rules.validity(relative, NOW) == (NOW, NOW + timedelta(days=30))
    absolute = rules.template({**BASE, "valid_days_after_claim": None, "valid_from": "2026-11-11T00:00:00+08:00",
                               "valid_until": "2026-11-12T00:00:00+08:00"}, "t")
    assert rules.validity(absolute, NOW) == (datetime(2026, 11, 10, 16, tzinfo=timezone.utc),
                                             datetime(2026, 11, 11, 16, tzinfo=timezone.utc))


def test_claim_window():
    t = rules.template({**BASE, "claim_starts_at": "2026-11-11T00:00:00Z", "claim_ends_at": "2026-11-11T01:00:00Z"}, "t")
    assert rules.claim_refusal(t, datetime(2026, 11, 10, 23, tzinfo=timezone.utc)) == "claim_window_closed"
    assert rules.claim_refusal(t, datetime(2026, 11, 11, 0, 30, tzinfo=timezone.utc)) is None
    assert rules.claim_refusal(t, datetime(2026, 11, 11, 1, tzinfo=timezone.utc)) == "claim_window_closed"


@pytest.mark.parametrize("kind, value, amount, expected", [
    ("cash_off", 1000, 5000, 1000), ("cash_off", 1000, 600, 600),
    ("percent_off", 15, 999, 150),       # 149.85 -> 150
    ("percent_off", 15, 990, 149),       # 148.5 -> 149 (half up)
    ("percent_off", 10, 1, 0), ("percent_off", 50, 1, 1), ("gift", 0, 5000, 0),
])
def test_discounts(kind, value, amount, expected):
    assert rules.discount(kind, value, amount) == expected


def _coupon(**kw):
    base = dict(state="issued", valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=1),
                store_ids=("sz",), min_spend_cents=5000)
    return rules.CouponState(**{**base, **kw})


@pytest.mark.parametrize("coupon, store, amount, reason", [
    (_coupon(), "sz", 5000, None),
    (_coupon(state="redeemed"), "sz", 5000, "already_redeemed"),
    (_coupon(state="void"), "sz", 5000, "reversed"),
    (_coupon(valid_from=NOW + timedelta(hours=1)), "sz", 5000, "not_yet_valid"),
    (_coupon(valid_until=NOW), "sz", 5000, "expired"),
    (_coupon(), "sh", 5000, "wrong_store"),
    (_coupon(store_ids=None), "sh", 5000, None),
    (_coupon(), "sz", 4999, "min_spend_not_met"),
    (_coupon(state="redeemed", valid_until=NOW), "sh", 1, "already_redeemed"),      # precedence
])
def test_redemption_refusals(coupon, store, amount, reason):
    assert rules.redemption_refusal(coupon, store_id=store, order_amount_cents=amount, now=NOW) == reason


def test_flash_sale_shards_keep_every_item_under_the_write_budget():
    n = rules.shard_count(1000, True, 10_000)
    assert 10_000 / n <= rules.MAX_WRITES_PER_ITEM and n == 13
    assert rules.shard_count(5, True, 10_000) == 5            # never more shards than coupons
    assert rules.shard_count(1000, False, None) == 1
    split = rules.split_stock(1000, 13)
    assert sum(split) == 1000 and max(split) - min(split) <= 1


def test_member_codes_rotate_and_cannot_be_forged():
    secret = b"s" * 32
    code, expires = rules.member_code(secret, "m_abc", 6000.0)
    assert expires == 6120                                          # accepted through the next step
    assert rules.read_member_code(secret, code, 6000.0) == "m_abc"
    assert rules.read_member_code(secret, code, 6119.0) == "m_abc"       # still the previous step
    assert rules.read_member_code(secret, code, 6120.0) is None          # a screenshot goes stale
    assert rules.read_member_code(b"t" * 32, code, 6000.0) is None
    member, step, mac = code.split(".")
    assert rules.read_member_code(secret, f"m_other.{step}.{mac}", 6000.0) is None
    assert rules.read_member_code(secret, "garbage", 6000.0) is None
