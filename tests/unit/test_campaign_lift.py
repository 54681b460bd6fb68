"""Lift of a campaign over its control group, against numbers worked by hand (domain.campaign_lift)."""
from __future__ import annotations

import pytest

from chalicelib.domain.campaign_lift import Arm, lift


def test_lift_and_its_interval_match_the_hand_worked_numbers():
    # sent: 500 of 10,000 converted (5 %); held out: 40 of 1,000 (4 %). RR = 0.05 / 0.04 = 1.25, lift 0.25.
    # SE of ln RR = sqrt(0.95 / 500 + 0.96 / 40) = sqrt(0.0019 + 0.024) = 0.160935
    # ln 1.25 = 0.223144; ± 1.96 x 0.160935 = ± 0.315429 -> [-0.092285, 0.538573] -> exp - 1 = [-0.0882, 0.7136]
    out = lift(Arm(10_000, 500, orders=620, gmv_cents=3_100_000), Arm(1_000, 40, orders=44, gmv_cents=200_000))
    assert out["lift"] == pytest.approx(0.25)
    assert out["lift_ci95"] == pytest.approx([-0.0882, 0.7136], abs=5e-4)
    assert out["conclusive"] is False and out["note"] is None          # the interval holds 0
    assert out["sent"] == {"members": 10_000, "converted_members": 500, "orders": 620, "gmv_cents": 3_100_000,
                           "conversion_rate": 0.05}
    assert out["held_out"]["conversion_rate"] == pytest.approx(0.04)


def test_a_clear_lift_with_a_big_enough_control_group_is_conclusive():
    # 6 % vs 1.5 %: RR 4, lift 3; SE = sqrt(0.94 / 600 + 0.985 / 30) = 0.185472; ln 4 = 1.386294
    # 1.386294 ± 0.363518 -> exp - 1 = [1.7809, 4.7535]
    out = lift(Arm(10_000, 600), Arm(2_000, 30))
    assert out["lift"] == pytest.approx(3.0)
    assert out["lift_ci95"] == pytest.approx([1.7809, 4.7535], abs=5e-4)
    assert out["conclusive"] is True


def test_a_control_group_under_1000_is_reported_but_never_conclusive():
    out = lift(Arm(10_000, 600), Arm(999, 15))
    assert out["lift"] == pytest.approx((0.06 / (15 / 999)) - 1)
    assert out["conclusive"] is False and "too small to conclude" in out["note"]


@pytest.mark.parametrize("sent,held", [(Arm(100, 0), Arm(1_000, 10)), (Arm(100, 5), Arm(1_000, 0)),
                                       (Arm(0, 0), Arm(0, 0))], ids=["no-sent-conversion", "no-control-conversion",
                                                                     "empty"])
def test_without_a_conversion_in_each_group_the_lift_is_undefined(sent, held):
    out = lift(sent, held)
    assert out["lift"] is None and out["lift_ci95"] is None and out["conclusive"] is False and out["note"]
