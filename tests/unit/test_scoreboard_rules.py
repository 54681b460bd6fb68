"""Which scoreboard counters an event moves, given the member's state, and how a read adds them up."""
from __future__ import annotations

import pytest

from chalicelib.domain import scoreboard as score
from chalicelib.errors import BadRequest

SZ = score.Keys("sz", "g1", "S1")
JOINED = score.Cohort("2026-03-01", SZ)


def by(deltas, dim):
    return {(day, key): m for d, day, key, m in deltas if d == dim}


def test_a_walk_in_moves_only_sales_of_its_day_and_store():
    deltas = score.order_recorded(day="2026-03-02", amount_cents=2500, where=score.Keys("sz", None, None),
                                  number=None, member=None)
    assert by(deltas, "day") == {("2026-03-02", None): {"orders": 1, "gmv_cents": 2500}}
    assert by(deltas, "store") == {("2026-03-02", "sz"): {"orders": 1, "gmv_cents": 2500}}
    assert by(deltas, "guide") == {("2026-03-02", None): {"orders": 1, "gmv_cents": 2500}}
    assert by(deltas, "channel") == {("2026-03-02", None): {"orders": 1, "gmv_cents": 2500}}


def test_a_members_first_order_converts_their_join_day_cohort():
    deltas = score.order_recorded(day="2026-03-05", amount_cents=900, where=score.Keys("sh", "g2", "S1"),
                                  number=1, member=JOINED)
    assert by(deltas, "store") == {
        ("2026-03-05", "sh"): {"orders": 1, "gmv_cents": 900, "member_orders": 1, "member_gmv_cents": 900,
                               "first_orders": 1},
        ("2026-03-01", "sz"): {"converted_members": 1, "cohort_gmv_cents": 900}}
    assert by(deltas, "guide")[("2026-03-01", "g1")] == {"converted_members": 1, "cohort_gmv_cents": 900}


def test_the_second_order_makes_a_repeat_member_and_the_third_only_a_repeat_order():
    second = by(score.order_recorded(day="2026-03-05", amount_cents=100, where=SZ, number=2, member=JOINED), "day")
    assert second[("2026-03-01", None)] == {"repeat_members": 1, "cohort_gmv_cents": 100}
    assert second[("2026-03-05", None)]["repeat_orders"] == 1 and "first_orders" not in second[("2026-03-05", None)]
    third = by(score.order_recorded(day="2026-03-05", amount_cents=100, where=SZ, number=3, member=JOINED), "day")
    assert third[("2026-03-01", None)] == {"cohort_gmv_cents": 100}
    assert third[("2026-03-05", None)]["repeat_orders"] == 1


def test_an_order_on_the_join_day_moves_one_item_per_dimension():
    """A transaction may not touch one item twice: cohort and activity of one day and key merge."""
    deltas = score.order_recorded(day="2026-03-01", amount_cents=700, where=SZ, number=1, member=JOINED)
    assert len(deltas) == 4
    assert by(deltas, "store") == {("2026-03-01", "sz"): {
        "orders": 1, "gmv_cents": 700, "member_orders": 1, "member_gmv_cents": 700, "first_orders": 1,
        "converted_members": 1, "cohort_gmv_cents": 700}}


def test_a_refund_lowers_the_refund_days_sales_and_the_cohorts_gmv_but_not_the_counts():
    deltas = score.order_refunded(day="2026-03-09", amount_cents=300, where=score.Keys("sh", "g2", "S1"),
                                  member=JOINED)
    assert by(deltas, "store") == {
        ("2026-03-09", "sh"): {"gmv_cents": -300, "refunded_cents": 300, "member_gmv_cents": -300},
        ("2026-03-01", "sz"): {"cohort_gmv_cents": -300}}
    walk_in = score.order_refunded(day="2026-03-09", amount_cents=300, where=score.Keys("sz", None, None),
                                   member=None)
    assert by(walk_in, "day") == {("2026-03-09", None): {"gmv_cents": -300, "refunded_cents": 300}}


def test_joining_and_coupons():
    assert by(score.joined(JOINED), "channel") == {("2026-03-01", "S1"): {"new_members": 1}}
    assert by(score.coupon_issued(day="2026-03-02", member=SZ), "guide") == {("2026-03-02", "g1"): {"coupons_issued": 1}}
    redeemed = score.coupon_redeemed(day="2026-03-03", store_id="sh", member=SZ, discount_cents=500)
    assert by(redeemed, "store") == {("2026-03-03", "sh"): {"coupons_redeemed": 1, "discount_cents": 500}}
    assert by(redeemed, "channel") == {("2026-03-03", "S1"): {"coupons_redeemed": 1, "discount_cents": 500}}
    reversed_ = score.coupon_redeemed(day="2026-03-04", store_id="sh", member=SZ, discount_cents=500, sign=-1)
    assert by(reversed_, "store") == {("2026-03-04", "sh"): {"coupons_redeemed": -1, "discount_cents": -500}}


def test_the_local_day_is_the_brands():
    assert score.local_day("2026-03-01T16:30:00Z", "Asia/Shanghai") == "2026-03-02"
    assert score.local_day("2026-03-01T15:59:59Z", "Asia/Shanghai") == "2026-03-01"


def test_a_read_sums_shards_by_key_with_rates_and_totals():
    q = score.query({"from": "2026-03-01", "to": "2026-03-02", "by": "store"})
    found = [("2026-03-01", "sz", {"new_members": 2, "converted_members": 1}),
             ("2026-03-01", "sz", {"orders": 1, "gmv_cents": 1000, "member_gmv_cents": 250}),
             ("2026-03-02", None, {"orders": 1, "gmv_cents": 500}),
             ("2026-03-03", "sz", {"orders": 9})]                        # outside the range
    a = score.answer(q, "Asia/Shanghai", found)
    assert [r["key"] for r in a["rows"]] == ["sz", None]
    sz = a["rows"][0]
    assert (sz["new_members"], sz["orders"], sz["conversion_rate"], sz["member_share"], sz["repeat_rate"]) == (
        2, 1, 0.5, 0.25, 0.0)
    assert a["rows"][1]["conversion_rate"] is None and a["rows"][1]["redemption_rate"] is None
    assert (a["totals"]["orders"], a["totals"]["gmv_cents"], a["totals"]["member_share"]) == (2, 1500, 0.1667)
    assert (a["from"], a["to"], a["by"], a["timezone"]) == ("2026-03-01", "2026-03-02", "store", "Asia/Shanghai")


@pytest.mark.parametrize("params,code", [
    ({"to": "2026-03-01"}, "invalid_from"),
    ({"from": "2026-3-1", "to": "2026-03-01"}, "invalid_from"),
    ({"from": "２０２６-03-01", "to": "2026-03-01"}, "invalid_from"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "invalid_from"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "invalid_range"),
    ({"from": "2024-01-01", "to": "2025-01-01"}, "invalid_range"),          # 367 days
    ({"from": "2026-03-01", "to": "2026-03-01", "by": "sku"}, "invalid_by"),
    ({"from": "2026-03-01", "to": "2026-03-01", "x": "1"}, "unknown_parameter"),
])
def test_bad_ranges_are_refused(params, code):
    with pytest.raises(BadRequest) as err:
        score.query(params)
    assert err.value.code == code


def test_366_days_are_allowed():
    assert score.query({"from": "2024-01-01", "to": "2024-12-31"}).by == "day"


def test_a_coupon_templates_own_rows():
    issued = score.coupon_issued(day="2026-03-02", member=SZ, template_id="tpl_x")
    assert by(issued, "tpl-store:tpl_x") == {("2026-03-02", "sz"): {"coupons_issued": 1}}
    assert by(issued, "tpl-day:tpl_x") == {("2026-03-02", None): {"coupons_issued": 1}}
    redeemed = score.coupon_redeemed(day="2026-03-03", store_id="sh", member=SZ, discount_cents=500,
                                     template_id="tpl_x")
    assert by(redeemed, "tpl-store:tpl_x") == {("2026-03-03", "sh"): {"coupons_redeemed": 1, "discount_cents": 500}}
    # an order carrying two coupons of one template is one order of its GMV
    carried = score.order_carried(day="2026-03-03", store_id="sh", amount_cents=9000,
                                  template_ids=["tpl_x", "tpl_x", "tpl_y"])
    assert by(carried, "tpl-store:tpl_x") == {("2026-03-03", "sh"): {"order_gmv_cents": 9000}}
    assert by(carried, "tpl-day:tpl_y") == {("2026-03-03", None): {"order_gmv_cents": 9000}}


def test_a_templates_range_defaults_to_the_31_days_ending_today():
    from datetime import date
    q = score.query({"by": "store"}, dimensions=("day", "store"), today=date(2026, 3, 31))
    assert (q.start, q.end, q.by) == (date(2026, 3, 1), date(2026, 3, 31), "store")
    with pytest.raises(BadRequest):
        score.query({"by": "guide"}, dimensions=("day", "store"), today=date(2026, 3, 31))
