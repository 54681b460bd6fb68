"""Which runs an order counts for, and what orders and refunds add (domain.conversion), by hand."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from chalicelib.domain import conversion as c

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
T = int(NOW.timestamp())
H = 3600


def mark(state: str, at: int, reason: str = "") -> str:
    return f"{state}|0123456789abcdef|0|{at}|{reason}"


def test_marks_put_members_in_groups():
    assert c.group_of(mark("c", T)) == "sent"
    assert c.group_of(mark("f", T, "outcome_unknown")) == "sent"       # claimed, WeChat's answer lost
    assert c.group_of(mark("h", T)) == "held_out"
    assert c.group_of(mark("f", T)) == "held_out"                      # a held-out mark closed later
    assert c.group_of(mark("k", T, "no_credit")) is None
    assert c.group_of(mark("f", T, "no_credit")) is None
    assert c.group_of(mark("r", T)) is None                            # released, never sent


def test_the_latest_run_of_each_campaign_inside_its_window_five_at_most():
    marks = {"R#a#2026-11-01T09:00Z": mark("c", T - 40 * 24 * H),     # older than any window
             "R#a#2026-11-29T09:00Z": mark("c", T - 27 * H),
             "R#a#2026-11-30T09:00Z": mark("h", T - 3 * H),            # a's latest run: held out
             "R#b#once": mark("c", T - 2 * 24 * H - H),                # b: 2 days + 1 h, window 2 days
             "R#c#once": mark("c", T + H),                             # after the order
             "R#d#once": mark("k", T - H, "no_credit"),
             "other": "x"}
    found = c.touches(marks)
    cands = c.candidates(found, NOW)
    assert [(t.campaign_id, t.run, t.group) for t in cands] == [("a", "2026-11-30T09:00Z", "held_out"),
                                                                ("b", "once", "sent")]
    assert [t.campaign_id for t in c.attributed(cands, {"a": 7, "b": 2}, NOW)] == ["a"]
    assert [t.campaign_id for t in c.attributed(cands, {"a": 7, "b": 3}, NOW)] == ["a", "b"]
    assert c.attributed(cands, {"b": 3}, NOW)[0].campaign_id == "b"    # a deleted campaign counts for nothing
    many = c.touches({f"R#k{i}#once": mark("c", T - i * H) for i in range(8)})
    assert [t.campaign_id for t in c.attributed(c.candidates(many, NOW), {f"k{i}": 7 for i in range(8)}, NOW)] == [
        "k0", "k1", "k2", "k3", "k4"]


def test_orders_and_refunds_move_counters_and_members_once():
    t = c.Touch("a", "once", "sent", T - H)
    assert c.on_order(t, 1000, 0) == c.Change("a", "once", "sent", 1, 1000, 1, 0)     # first: member converts
    assert c.on_order(t, 500, 1) == c.Change("a", "once", "sent", 1, 500, 0, 1)
    assert c.on_refund("a", "once", "sent", 300, False, 2) == c.Change("a", "once", "sent", 0, -300, 0, 2)
    assert c.on_refund("a", "once", "sent", 700, True, 2) == c.Change("a", "once", "sent", -1, -700, 0, 2)
    assert c.on_refund("a", "once", "sent", 500, True, 1) == c.Change("a", "once", "sent", -1, -500, -1, 1)
    assert c.decode(c.encode_changes([c.on_order(t, 1, 0)])) == [("a", "once", "sent")]
    assert c.encode_changes([]) is None


def test_the_view_counts_failed_claims_in_the_sent_group():
    stats = {"sent": 90, "failed": 10, "held_out": 5}
    totals = {"sent": {"members": 10, "orders": 12, "gmv_cents": 5000},
              "held_out": {"members": 0, "orders": 0, "gmv_cents": 0}}
    out = c.stats_view(stats, totals)
    assert out["members"] == {"sent": 100, "held_out": 5}
    assert out["converted"] == {"members": 10, "orders": 12, "gmv_cents": 5000}
    assert out["lift"]["sent"]["conversion_rate"] == 0.1 and out["lift"]["lift"] is None
    assert "under 1,000" in out["lift"]["note"]
    assert c.MAX_WINDOW == timedelta(days=30)
