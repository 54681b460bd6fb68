"""The scoreboard (人货场): which day-keyed counters an event moves, and how a stats read adds them up. Pure.

Every counter lives in an item of (dimension, brand-local day, key): dimension `day` (key: none, one
row per day), `store`, `guide` or `channel`; the key is None where none applies (a walk-in has no
channel, an online order no store). An event moves, in each of the four dimensions, the item of the
day and key it happened at; the writer (storage.scoreboard) adds those deltas in the same
transaction as the event itself, so a replay that writes nothing counts nothing.

Two families share the items:
- activity, on the day of the order (refund), keyed where it happened: store = the order's store,
  guide = the order's guide (else the member's first-touch guide), channel = the member's
  first-touch scene;
- acquisition cohort, on the member's JOIN day, keyed by the member's first touch (store, guide,
  scene): `new_members` when they join, `converted_members` with their first order,
  `repeat_members` with their second, `cohort_gmv_cents` with every order and refund.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from chalicelib.errors import BadRequest

DIMENSIONS = ("day", "store", "guide", "channel")
ACTIVITY = ("orders", "gmv_cents", "refunded_cents", "member_orders", "member_gmv_cents", "first_orders",
            "repeat_orders")
COHORT = ("new_members", "converted_members", "repeat_members", "cohort_gmv_cents")
COUPONS = ("coupons_issued", "coupons_redeemed", "discount_cents")
TEMPLATE_METRICS = {"issued": "coupons_issued", "redeemed": "coupons_redeemed", "discount_cents": "discount_cents",
                    "order_gmv_cents": "order_gmv_cents"}
METRICS = COHORT + ACTIVITY + COUPONS
RATES = {"conversion_rate": ("converted_members", "new_members"),
         "repeat_rate": ("repeat_members", "converted_members"),
         "member_share": ("member_gmv_cents", "gmv_cents"),
         "redemption_rate": ("coupons_redeemed", "coupons_issued")}
MAX_DAYS = 366
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@dataclass(frozen=True)
class Keys:
    """Where an event is credited in each dimension other than `day`."""
    store: str | None
    guide: str | None
    channel: str | None

    def of(self, dimension: str) -> str | None:
        return None if dimension == "day" else getattr(self, dimension)


@dataclass(frozen=True)
class Cohort:
    """A member's acquisition cohort: the brand-local day they joined and their first touch."""
    day: str
    keys: Keys


Delta = tuple[str, str, str | None, dict[str, int]]     # (dimension, day, key, {metric: amount})


def local_day(moment: str | datetime, tz: str) -> str:
    """The brand-local calendar day of an ISO time (with a zone) or an aware datetime."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


def cohort(joined_at: str, first_touch: dict, tz: str) -> Cohort:
    return Cohort(day=local_day(joined_at, tz),
                  keys=Keys(first_touch.get("store_id"), first_touch.get("guide_id"), first_touch.get("scene")))


def _spread(day: str, keys: Keys, metrics: dict[str, int]) -> list[Delta]:
    metrics = {k: v for k, v in metrics.items() if v}
    return [(dim, day, keys.of(dim), dict(metrics)) for dim in DIMENSIONS] if metrics else []


def merge(deltas: list[Delta]) -> list[Delta]:
    """One delta per (dimension, day, key): a transaction may not touch one item twice (a member who
    joins and orders on one day moves the cohort and the activity of the same `day` item)."""
    merged: dict[tuple[str, str, str | None], dict[str, int]] = {}
    for dim, day, key, metrics in deltas:
        into = merged.setdefault((dim, day, key), {})
        for name, value in metrics.items():
            into[name] = into.get(name, 0) + value
    return [(dim, day, key, {k: v for k, v in m.items() if v}) for (dim, day, key), m in merged.items()
            if any(m.values())]


def joined(c: Cohort) -> list[Delta]:
    """A member joined (made by their first touch)."""
    return _spread(c.day, c.keys, {"new_members": 1})


def order_recorded(*, day: str, amount_cents: int, where: Keys, number: int | None,
                   member: Cohort | None) -> list[Delta]:
    """An order of `amount_cents` on `day` credited `where`; `number` is the member's order number
    (1: their first order ever), None with `member` for a walk-in."""
    activity = {"orders": 1, "gmv_cents": amount_cents}
    deltas = []
    if member is not None:
        activity.update(member_orders=1, member_gmv_cents=amount_cents, first_orders=int(number == 1),
                        repeat_orders=int(number is not None and number >= 2))
        deltas += _spread(member.day, member.keys, {"converted_members": int(number == 1),
                                                    "repeat_members": int(number == 2),
                                                    "cohort_gmv_cents": amount_cents})
    return merge(_spread(day, where, activity) + deltas)


def order_refunded(*, day: str, amount_cents: int, where: Keys, member: Cohort | None) -> list[Delta]:
    """A refund on `day` of an order credited `where` (its store, guide and channel as recorded): the
    sales of the refund's day go down (gmv is net of refunds), the order's cohort's gmv too. Order
    counts, conversion and repeat stay: the member did buy."""
    activity = {"gmv_cents": -amount_cents, "refunded_cents": amount_cents}
    deltas = []
    if member is not None:
        activity["member_gmv_cents"] = -amount_cents
        deltas = _spread(member.day, member.keys, {"cohort_gmv_cents": -amount_cents})
    return merge(_spread(day, where, activity) + deltas)


def template_dimensions(template_id: str) -> tuple[str, str]:
    """A coupon template's own counters: by day, and by store (`day` and `store` rows of its stats)."""
    return f"tpl-day:{template_id}", f"tpl-store:{template_id}"


def _template(template_id: str | None, day: str, store_id: str | None, metrics: dict[str, int]) -> list[Delta]:
    if template_id is None:
        return []
    by_day, by_store = template_dimensions(template_id)
    return [(by_day, day, None, dict(metrics)), (by_store, day, store_id, dict(metrics))]


def coupon_issued(*, day: str, member: Keys, template_id: str | None = None) -> list[Delta]:
    """A coupon claimed (or given: welcome, campaign) on `day`, keyed by the member's first touch;
    with `template_id`, the template's own day and store (first-touch store) rows too."""
    return (_spread(day, member, {"coupons_issued": 1})
            + _template(template_id, day, member.store, {"coupons_issued": 1}))


def coupon_redeemed(*, day: str, store_id: str, member: Keys, discount_cents: int, sign: int = 1,
                    template_id: str | None = None) -> list[Delta]:
    """A redemption (sign 1) or its reversal (sign -1) on `day`: by=store is the redeeming store,
    by=guide|channel the member's first touch; the template's rows by the redeeming store."""
    metrics = {"coupons_redeemed": sign, "discount_cents": sign * discount_cents}
    return (_spread(day, Keys(store_id, member.guide, member.channel), metrics)
            + _template(template_id, day, store_id, metrics))


def order_carried(*, day: str, store_id: str | None, amount_cents: int, template_ids: list[str]) -> list[Delta]:
    """An order that carried redemptions of these templates: each template's `order_gmv_cents` (the
    order's amount as recorded, once per template however many of its coupons the order used). A
    refund of such an order passes its amount negated: the templates' order GMV is net of refunds."""
    return [d for t in sorted(set(template_ids)) for d in _template(t, day, store_id, {"order_gmv_cents": amount_cents})]


# ---- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    start: date
    end: date
    by: str


def _day(value: object, name: str) -> date:
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise BadRequest(f"{name} must be a day YYYY-MM-DD", code="invalid_" + name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is not a calendar day", code="invalid_" + name) from None


def query(params: dict | None, *, dimensions: tuple[str, ...] = DIMENSIONS, today: date | None = None) -> Query:
    """`from`, `to` (inclusive, at most MAX_DAYS days) and `by`, from a query string. With `today`
    (a template's stats), a missing range is the 31 days ending today."""
    params = params or {}
    extra = sorted(set(params) - {"from", "to", "by"})
    if extra:
        raise BadRequest(f"unknown parameter(s): {', '.join(extra[:5])}", code="unknown_parameter")
    if today is not None and params.get("from") is None and params.get("to") is None:
        params = {**params, "from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}
    start, end = _day(params.get("from"), "from"), _day(params.get("to"), "to")
    by = params.get("by", "day")
    if by not in dimensions:
        raise BadRequest(f"by must be one of {', '.join(dimensions)}", code="invalid_by")
    if end < start:
        raise BadRequest("to is before from", code="invalid_range")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(f"at most {MAX_DAYS} days at once", code="invalid_range")
    return Query(start, end, by)


def with_rates(metrics: dict[str, int]) -> dict:
    row = {name: int(metrics.get(name, 0)) for name in METRICS}
    for rate, (num, den) in RATES.items():
        # None when the denominator is 0, or below 0: a day whose refunds outweigh its sales has no share
        row[rate] = round(row[num] / row[den], 4) if row[den] > 0 else None
    return row


def template_row(metrics: dict[str, int]) -> dict:
    row = {name: int(metrics.get(source, 0)) for name, source in TEMPLATE_METRICS.items()}
    row["redemption_rate"] = round(row["redeemed"] / row["issued"], 4) if row["issued"] else None
    return row


def answer(q: Query, tz: str, counters: list[tuple[str, str | None, dict[str, int]]], *,
           template: bool = False) -> dict:
    """The stats answer from counter items (day, key, metrics), shards and all: rows summed by key
    (the day for by=day), sorted (None last), and the totals."""
    rows: dict[str | None, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for day, key, metrics in counters:
        if not q.start.isoformat() <= day <= q.end.isoformat():
            continue
        row = rows.setdefault(day if q.by == "day" else key, {})
        for name, value in metrics.items():
            row[name] = row.get(name, 0) + value
            totals[name] = totals.get(name, 0) + value
    ordered = sorted(rows.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    shape = template_row if template else with_rates
    return {"from": q.start.isoformat(), "to": q.end.isoformat(), "by": q.by, "timezone": tz,
            "rows": [{"key": key, **shape(m)} for key, m in ordered], "totals": shape(totals)}


__all__ = ["DIMENSIONS", "METRICS", "Keys", "Cohort", "local_day", "cohort", "merge", "joined", "order_recorded",
           "order_refunded", "coupon_issued", "coupon_redeemed", "order_carried", "template_dimensions", "query",
           "answer"]
