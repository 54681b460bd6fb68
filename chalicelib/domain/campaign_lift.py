"""Did the campaign cause it? Conversion of the members sent to against the held-out control group.

Pure. `lift = conversion(sent) / conversion(held out) - 1`, with a 95 % confidence interval from
the log of the risk ratio (Katz et al. 1978): ln(RR) ± 1.96 · sqrt((1 - p1)/x1 + (1 - p0)/x0),
where x1 of n1 sent and x0 of n0 held-out members converted. It needs a conversion in each
group; a control group under MIN_CONTROL members is reported but said to be too small to conclude.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
MIN_CONTROL = 1_000


@dataclass(frozen=True)
class Arm:
    members: int
    converted_members: int
    orders: int = 0
    gmv_cents: int = 0

    @property
    def conversion(self) -> float | None:
        return self.converted_members / self.members if self.members else None

    def view(self) -> dict:
        return {"members": self.members, "converted_members": self.converted_members, "orders": self.orders,
                "gmv_cents": self.gmv_cents, "conversion_rate": self.conversion}


def lift(sent: Arm, held_out: Arm) -> dict:
    """The campaign view's `holdout` section."""
    out = {"sent": sent.view(), "held_out": held_out.view(), "lift": None, "lift_ci95": None,
           "conclusive": False, "note": None}
    p1, p0 = sent.conversion, held_out.conversion
    if held_out.members < MIN_CONTROL:
        out["note"] = f"control group of {held_out.members} members is under {MIN_CONTROL:,}: too small to conclude"
    if p1 is None or p0 is None or sent.converted_members == 0 or held_out.converted_members == 0:
        out["note"] = out["note"] or "no conversion in one of the groups yet: lift undefined"
        return out
    ratio = p1 / p0
    se = math.sqrt((1 - p1) / sent.converted_members + (1 - p0) / held_out.converted_members)
    low, high = math.exp(math.log(ratio) - Z95 * se) - 1, math.exp(math.log(ratio) + Z95 * se) - 1
    out["lift"] = ratio - 1
    out["lift_ci95"] = [low, high]
    out["conclusive"] = held_out.members >= MIN_CONTROL and (low > 0 or high < 0)
    return out
