"""A month of history for the demo brand, so `make run`'s scoreboard has something to show.

The story is planned by a seeded random generator (the same members, orders, refunds and coupons
every run, on the 30 days before today in the brand's time zone) and written through the services
themselves, with the moment of each event given explicitly (no patched clock): members join by the
mini-program scan (`onboarding.scan_from_mini_program(now=)`, or `join_from_mini_program(now=)` with
no code), coupons are given (`coupons.issue_coupon(now=)`), redeemed at the till
(`coupons.redeem(now=)`), and each day's orders and refunds arrive as one ERP import with their
`occurred_at` (the import's own path, 8 rows in flight). So every counter the scoreboard shows was
moved by the transaction of the event it counts, as in production.

`plan()` is pure (tests check the story); `seed()` writes it into the running local stack.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = 30
SEED = 9
TZ = ZoneInfo("Asia/Shanghai")
STORES = ("sz-futian", "sh-jingan")
STORE_GUIDE = {"sz-futian": "g-zhang", "sh-jingan": "g-li"}
# the demo brand's S1 (Futian, Zhang San) and S2 (Jing'an receipts), and a third code: Li Si's card
GUIDE = {"guide_id": "g-li", "store_id": "sh-jingan", "name": "Li Si 李四"}
CHANNEL = {"scene": "S3", "store_id": "sh-jingan", "guide_id": "g-li", "source": "guide_card",
           "tags": ["guide_card", "shanghai"]}
CHANNEL_STORE = {"S1": "sz-futian", "S2": "sh-jingan", "S3": "sh-jingan", None: None}
TEMPLATE = {"name": "新客立减 ¥5 welcome ¥5 off", "kind": "cash_off", "value": 500, "min_spend_cents": 2000,
            "valid_days_after_claim": 14, "per_member_limit": 1}


@dataclass
class Member:
    openid: str
    scene: str | None
    joined: int                                       # day index
    orders: int = 0
    coupon: bool = False                              # given the welcome coupon, not redeemed yet


@dataclass
class Day:
    day: date
    joins: list[Member] = field(default_factory=list)
    coupons: list[str] = field(default_factory=list)                  # openids given the coupon
    orders: list[dict] = field(default_factory=list)                  # import rows (member as openid)
    redeem: dict[str, str] = field(default_factory=dict)              # order_id -> openid whose coupon it used
    refunds: list[dict] = field(default_factory=list)


def at(day: date, minute: int) -> datetime:
    """The moment `minute` minutes after 09:00 on `day`, in the brand's time zone."""
    return datetime.combine(day, time(9), TZ) + timedelta(minutes=minute)


def plan(today: date, days: int = DAYS, seed: int = SEED) -> list[Day]:
    """The story, day by day: 1-2 members join each day (S1, S2, S3 or no code); 60% of them are given
    the welcome coupon; about three in four buy within three days of joining, and a buyer buys again on about one day
    in twelve; a fifth of member orders are online; a member with a coupon uses it
    on an order over its minimum at a store; 1-3 walk-ins a day; one order in fifteen is refunded, in
    part or whole, within two days (refunds after the last day are left out)."""
    rng = random.Random(seed)
    members: list[Member] = []
    out = [Day(today - timedelta(days=days - i)) for i in range(days)]
    n_order = 0
    for i, d in enumerate(out):
        minute = 0
        for _ in range(rng.randint(1, 2)):
            m = Member(f"o_hist_{len(members):03d}", rng.choices(("S1", "S2", "S3", None), (35, 30, 20, 15))[0], i)
            members.append(m)
            d.joins.append(m)
            if rng.random() < 0.6:
                m.coupon = True
                d.coupons.append(m.openid)
        buyers = [m for m in members if (m.orders == 0 and m.joined <= i <= m.joined + 3 and rng.random() < 0.3)
                  or (m.orders > 0 and rng.random() < 0.08)]
        for m in buyers:
            n_order += 1
            minute += rng.randint(5, 40)
            online = rng.random() < 0.2
            store = None if online else (CHANNEL_STORE[m.scene] or rng.choice(STORES))
            row = {"order_id": f"h{n_order:04d}", "amount_cents": rng.randrange(1800, 12_000, 100),
                   "store_id": store, "openid": m.openid, "occurred_at": at(d.day, minute).isoformat()}
            if store and rng.random() < 0.3:
                row["guide_id"] = STORE_GUIDE[store]
            if store and m.coupon and row["amount_cents"] >= TEMPLATE["min_spend_cents"]:
                m.coupon = False
                d.redeem[row["order_id"]] = m.openid
            m.orders += 1
            d.orders.append(row)
        for _ in range(rng.randint(1, 3)):
            n_order += 1
            minute += rng.randint(3, 30)
            d.orders.append({"order_id": f"h{n_order:04d}", "amount_cents": rng.randrange(900, 6000, 100),
                             "store_id": rng.choice(STORES), "occurred_at": at(d.day, minute).isoformat()})
        for row in d.orders:
            later = i + rng.randint(0, 2)
            if rng.random() < 1 / 15 and later < days:
                amount = row["amount_cents"] if rng.random() < 0.5 else row["amount_cents"] // 2
                out[later].refunds.append({"order_id": row["order_id"], "refund_id": f"r-{row['order_id']}",
                                           "amount_cents": amount,
                                           "occurred_at": at(out[later].day, 840).isoformat()})
    return out


class Stopped(Exception):
    """The stack is stopping (Ctrl-C): the history ends at the day it had reached."""


def seed(brand_id: str = "demo", today: date | None = None, days: int = DAYS, stopping=lambda: False) -> dict:
    """Write the plan into the running stack (its services in this process): the demo brand's stores
    sz-futian and sh-jingan, guide g-zhang and channels S1, S2 must exist; guide g-li and channel S3
    are added. A summary of what was written."""
    from chalicelib.observability import flush_metrics
    from chalicelib.services import admin, coupons, onboarding, orders
    from chalicelib.storage import tenancy
    today = today or datetime.now(TZ).date()
    admin.create_guide(brand_id, GUIDE)
    admin.create_channel(brand_id, CHANNEL)
    days = plan(today, days)
    template = coupons.create_template(brand_id, TEMPLATE)["template_id"]
    brand = tenancy.require_brand(brand_id)
    member_ids: dict[str, str] = {}
    codes: dict[str, str] = {}
    summary = {"members": 0, "orders": 0, "refunds": 0, "coupons": 0, "redeemed": 0}
    for d in days:
        if stopping():
            raise Stopped()
        for n, m in enumerate(d.joins):
            session = {"o": m.openid, "u": f"u{m.openid[1:]}"}
            moment = at(d.day, -30 + n)
            if m.scene:
                member_ids[m.openid] = onboarding.scan_from_mini_program(brand_id, session, {"scene": m.scene},
                                                                         now=moment)["member_id"]
            else:
                member_ids[m.openid] = onboarding.join_from_mini_program(brand_id, session, now=moment)
        for n, openid in enumerate(d.coupons):
            codes[openid] = coupons.issue_coupon(brand, member_ids[openid], template, issue_key=f"history:{openid}",
                                                 source="welcome", now=at(d.day, -20 + n))
        rows = []
        for row in d.orders:
            row = dict(row)
            openid = row.pop("openid", None)
            if openid:
                row["member_id"] = member_ids[openid]
            if row["order_id"] in d.redeem:
                _, done = coupons.redeem(brand_id, row["store_id"], {
                    "code": codes[d.redeem[row["order_id"]]], "order_id": row["order_id"],
                    "order_amount_cents": row["amount_cents"]}, f"history-{row['order_id']}",
                    now=datetime.fromisoformat(row["occurred_at"]) - timedelta(minutes=1))
                row["redemption_ids"] = [done["redemption_id"]]
                summary["redeemed"] += 1
            rows.append(row)
        answer = orders.import_orders(brand_id, {"orders": rows, "refunds": d.refunds})
        flush_metrics()         # as each invocation does (else Powertools prints them all at 100 values)
        if answer["rejected"] or answer["refunds"]["rejected"]:
            raise RuntimeError(f"the demo history was refused on {d.day}: {answer}")
        summary["members"] += len(d.joins)
        summary["coupons"] += len(d.coupons)
        summary["orders"] += answer["accepted"]
        summary["refunds"] += answer["refunds"]["accepted"]
    return {"from": days[0].day.isoformat(), "to": days[-1].day.isoformat(), **summary,
            "template_id": template, "order_member": _next_buyer(days)}


def _next_buyer(days: list[Day]) -> str:
    """A member who joined through a store's code and bought once (`python -m siyu_dev order` makes them a
    repeat buyer), else the first member."""
    counts: dict[str, int] = {}
    scenes = {m.openid: m.scene for d in days for m in d.joins}
    for d in days:
        for row in d.orders:
            if "openid" in row:
                counts[row["openid"]] = counts.get(row["openid"], 0) + 1
    once = [o for o, n in sorted(counts.items()) if n == 1 and scenes[o]]
    return once[0] if once else days[0].joins[0].openid


def seed_in_background(state: dict, state_file, stopping) -> "threading.Thread":
    """`make run`: the month is written while the developer reads the walk-through (the stack answers
    meanwhile; the emulator takes DynamoDB requests one at a time, so its first answers are a little
    slower). When done, the summary joins the state file (`python -m siyu_dev order` waits for it)
    and one line says so. `stopping()`: Ctrl-C came first, so a failure is the stack going away."""
    import json
    import threading
    import time as clock

    def write() -> None:
        started = clock.monotonic()
        try:
            summary = seed(state["brand"]["brand_id"], stopping=stopping)
        except Stopped:
            return
        except Exception as err:  # noqa: BLE001 - reported, never fatal to the stack
            if not stopping():
                print(f"the demo history could not be written: {err!r}", flush=True)
            return
        state["history"] = summary
        state_file.write_text(json.dumps(state, indent=2, ensure_ascii=False))
        print(f"history: {summary['from']} .. {summary['to']} written in {clock.monotonic() - started:.0f} s — "
              f"{summary['members']} members (S1, S2, S3, no code), {summary['orders']} orders, "
              f"{summary['refunds']} refunds, {summary['coupons']} coupons given, {summary['redeemed']} redeemed",
              flush=True)
    thread = threading.Thread(target=write, name="history", daemon=True)
    thread.start()
    return thread
