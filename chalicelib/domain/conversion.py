"""Campaign conversion: which runs an order is attributed to, and what it adds to their counters. Pure.

A run's decision on a member is a ledger mark `R#<campaign>#<run>` on the member's reach or
subscribe-credit item (storage.ledger). An order is attributed to the most recent run of each
campaign that put the member in a group — `sent` or `held_out` — at most `attribution_days` (the
campaign's) before the order's `occurred_at`, and to at most MAX_CAMPAIGNS campaigns, the most
recent first: each attribution adds 2 items to the order's transaction (DynamoDB allows 100).

The `sent` group is every member the run *claimed* to send to (a mark `c`, or `f` closed as
`outcome_unknown`), WeChat failures included: it is the intent-to-treat group. Comparing only the
members WeChat delivered to with the whole control group would bias the lift (a member who refused
the subscription message is not like the others), and telling them apart costs a read of the
run's outcome items per order. So the view's `sent` arm counts `sent + failed` members.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain import campaign_lift

MAX_CAMPAIGNS = 5          # campaigns one order is attributed to (2 transaction items each)
MAX_WINDOW = timedelta(days=30)   # the longest attribution_days: marks older than this never count
MAX_CANDIDATES = 20        # campaigns whose definitions one order reads to learn their windows
OUTCOME_UNKNOWN = "outcome_unknown"
GROUPS = ("sent", "held_out")


@dataclass(frozen=True)
class Touch:
    campaign_id: str
    run: str
    group: str           # sent | held_out
    at: int              # when the run decided (epoch seconds)


def group_of(mark_text: str) -> str | None:
    """The group a ledger mark puts its member in: `c` (claimed) and `f` closed as outcome_unknown
    are sent; `h` and `f` closed as held out (no reason) are held out; skips and releases are none."""
    parts = (mark_text.split("|") + ["", "", "", "", ""])[:5]
    state, reason = parts[0], parts[4]
    if state == "c" or (state == "f" and reason == OUTCOME_UNKNOWN):
        return "sent"
    if state == "h" or (state == "f" and not reason):
        return "held_out"
    return None


def touches(marks: dict[str, str]) -> list[Touch]:
    """The touches recorded by marks {attribute name: mark text} (names `R#<campaign>#<run>`)."""
    out = []
    for name, text in marks.items():
        if not name.startswith("R#") or "#" not in name[2:]:
            continue
        campaign_id, run = name[2:].split("#", 1)
        group = group_of(text)
        parts = text.split("|")
        at = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        if group is not None and at > 0:
            out.append(Touch(campaign_id, run, group, at))
    return out


def candidates(found: list[Touch], occurred_at: datetime) -> list[Touch]:
    """Per campaign, its latest touch at or before the order and within MAX_WINDOW of it; the most
    recent first, at most MAX_CANDIDATES (whose windows the order then reads)."""
    end = occurred_at.timestamp()
    start = (occurred_at - MAX_WINDOW).timestamp()
    latest: dict[str, Touch] = {}
    for t in found:
        if start <= t.at <= end and (t.campaign_id not in latest or (t.at, t.run) > (latest[t.campaign_id].at,
                                                                                      latest[t.campaign_id].run)):
            latest[t.campaign_id] = t
    return sorted(latest.values(), key=lambda t: (-t.at, t.campaign_id))[:MAX_CANDIDATES]


def attributed(found: list[Touch], windows: dict[str, int], occurred_at: datetime) -> list[Touch]:
    """The touches the order counts for: within their campaign's attribution_days (`windows`; a
    campaign no longer defined counts for nothing), the MAX_CAMPAIGNS most recent."""
    end = occurred_at.timestamp()
    kept = [t for t in found if t.campaign_id in windows and end - windows[t.campaign_id] * 86400 <= t.at <= end]
    return sorted(kept, key=lambda t: (-t.at, t.campaign_id))[:MAX_CAMPAIGNS]


@dataclass(frozen=True)
class Change:
    """What one order (refund) moves for one run: the group's counters and the member's marker."""
    campaign_id: str
    run: str
    group: str
    orders: int          # +1 order, -1 a full refund, 0 a partial one
    gmv_cents: int
    members: int         # +1 the member's first attributed order of the run, -1 its last one refunded
    marker_orders: int   # the member's attributed orders of the run as read (the write's condition)


def on_order(t: Touch, amount_cents: int, marker_orders: int) -> Change:
    return Change(t.campaign_id, t.run, t.group, 1, amount_cents, 1 if marker_orders == 0 else 0, marker_orders)


def on_refund(campaign_id: str, run: str, group: str, amount_cents: int, full: bool, marker_orders: int) -> Change:
    """A refund takes its amount off the group's GMV; the refund that completes the order's takes the
    order off too, and the member off when it was their only attributed order of the run."""
    if not full:
        return Change(campaign_id, run, group, 0, -amount_cents, 0, marker_orders)
    return Change(campaign_id, run, group, -1, -amount_cents, -1 if marker_orders == 1 else 0, marker_orders)


def encode(touched: list[Touch]) -> list[str]:
    """How an order remembers its attributions (so its refunds roll them back): `campaign|run|group`."""
    return [f"{t.campaign_id}|{t.run}|{t.group}" for t in touched]


def encode_changes(changes: list[Change]) -> list[str] | None:
    return [f"{c.campaign_id}|{c.run}|{c.group}" for c in changes] or None


def decode(values: list[str] | None) -> list[tuple[str, str, str]]:
    out = []
    for value in values or []:
        campaign_id, run, group = value.split("|", 2)
        out.append((campaign_id, run, group))
    return out


def stats_view(stats: dict, totals: dict[str, dict[str, int]]) -> dict:
    """What the campaign view's stats gain: `converted` (the sent group's converted members, orders
    and GMV), `held_out_converted` (the same for the control group), `members` per group (sent counts
    `sent + failed`: see above) and `lift` (domain.campaign_lift: the 95 % interval, the small-control note)."""
    members = {"sent": int(stats.get("sent", 0)) + int(stats.get("failed", 0)),
               "held_out": int(stats.get("held_out", 0))}
    arms = {g: campaign_lift.Arm(members[g], totals[g]["members"], totals[g]["orders"], totals[g]["gmv_cents"])
            for g in GROUPS}
    return {"converted": dict(totals["sent"]), "held_out_converted": dict(totals["held_out"]), "members": members,
            "lift": campaign_lift.lift(arms["sent"], arms["held_out"])}


def no_totals() -> dict[str, dict[str, int]]:
    return {g: {"members": 0, "orders": 0, "gmv_cents": 0} for g in GROUPS}
