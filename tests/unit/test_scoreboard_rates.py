"""The derived rates of a scoreboard row: None when the denominator is not positive."""
from __future__ import annotations

from chalicelib.domain import scoreboard as score


def test_a_rate_is_none_when_its_denominator_is_zero():
    row = score.with_rates({"new_members": 0, "orders": 1, "gmv_cents": 500, "member_gmv_cents": 500})
    assert (row["conversion_rate"], row["repeat_rate"], row["member_share"], row["redemption_rate"]) == (
        None, None, 1.0, None)


def test_a_day_whose_refunds_outweigh_its_sales_has_no_member_share():
    """A walk-in sale of 500 and a 1,000 refund of a member's older order on one day: gmv -500,
    member gmv -1,000; -1,000 / -500 = 2.0 would read as a 200% member share."""
    row = score.with_rates({"gmv_cents": -500, "member_gmv_cents": -1000, "refunded_cents": 1000})
    assert row["gmv_cents"] == -500 and row["member_share"] is None


def test_a_day_of_reversals_only_keeps_its_negative_redemptions_and_no_rate():
    row = score.with_rates({"coupons_redeemed": -1, "discount_cents": -1000})
    assert row["coupons_redeemed"] == -1 and row["redemption_rate"] is None
