"""The demo history's story (siyu_dev.history.plan) and the `order` command's report of what moved."""
from __future__ import annotations

from datetime import date

from siyu_dev import history
from siyu_dev.order_demo import moved

TODAY = date(2026, 11, 30)


def test_the_story_is_the_same_every_run_and_ends_the_day_before_today():
    one, two = history.plan(TODAY), history.plan(TODAY)
    assert one == two
    assert [d.day for d in one][0] == date(2026, 10, 31) and one[-1].day == date(2026, 11, 29)
    assert history.plan(date(2026, 12, 1))[0].joins == one[0].joins      # the same story, a day later


def test_the_story_has_what_the_scoreboard_shows():
    days = history.plan(TODAY)
    members = [m for d in days for m in d.joins]
    orders = [o for d in days for o in d.orders]
    assert {m.scene for m in members} == {"S1", "S2", "S3", None}
    assert len({o["order_id"] for o in orders}) == len(orders)
    walk_ins = [o for o in orders if "openid" not in o]
    online = [o for o in orders if o["store_id"] is None]
    assert walk_ins and online and all("openid" in o for o in online)
    per_member = {}
    for o in orders:
        if "openid" in o:
            per_member[o["openid"]] = per_member.get(o["openid"], 0) + 1
    assert 1 in per_member.values() and max(per_member.values()) >= 2          # first and repeat buyers
    assert len(per_member) < len(members)                                     # and members who never bought
    coupons = [c for d in days for c in d.coupons]
    redeemed = [openid for d in days for openid in d.redeem.values()]
    assert set(redeemed) <= set(coupons) and len(set(redeemed)) == len(redeemed) < len(coupons)
    by_id = {o["order_id"]: o for o in orders}
    for d in days:
        for order_id, openid in d.redeem.items():
            assert by_id[order_id]["openid"] == openid and by_id[order_id]["store_id"] is not None
            assert by_id[order_id]["amount_cents"] >= history.TEMPLATE["min_spend_cents"]
    refunds = [r for d in days for r in d.refunds]
    assert refunds and all(0 < r["amount_cents"] <= by_id[r["order_id"]]["amount_cents"] for r in refunds)
    assert all(r["occurred_at"] >= by_id[r["order_id"]]["occurred_at"] for r in refunds)


def test_the_next_buyer_has_bought_once_through_a_store_code():
    days = history.plan(TODAY)
    buyer = history._next_buyer(days)
    assert sum(o.get("openid") == buyer for d in days for o in d.orders) == 1
    assert next(m for d in days for m in d.joins if m.openid == buyer).scene is not None


def test_moved_names_each_changed_figure_of_each_row_and_the_totals():
    def answer(rows, totals):
        return {"rows": rows, "totals": totals}
    before = {by: answer([{"key": "sz", "orders": 1, "member_share": None}], {"orders": 1}) for by in
              ("day", "store", "guide", "channel")}
    after = {by: answer([{"key": "sz", "orders": 1, "member_share": None}], {"orders": 1}) for by in
             ("day", "guide", "channel")}
    after["store"] = answer([{"key": "sz", "orders": 2, "member_share": 0.5}, {"key": None, "orders": 1}],
                            {"orders": 3})
    after["day"] = answer(before["day"]["rows"], {"orders": 3})
    lines = moved(before, after)
    assert lines == [f"  {'by=store sz':<24} orders 1 → 2, member_share null → 0.5",
                     f"  {'by=store null':<24} orders null → 1",
                     f"  {'totals':<24} orders 1 → 3"]
