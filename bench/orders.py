"""Order figures: AWS requests and write units per till order, refund, replay and imported order.

Write units are worked out from what each transaction writes, by DynamoDB's pricing rule for
transactions (2 WCU per item per started KB; an update is charged on the larger of the item before
and after, taken here as after), with item sizes by DynamoDB's sizing rule; the emulator reports none.
"""
from __future__ import annotations

import json
import math
import time
import zlib


def _value_bytes(value: dict) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = len(v.lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS"):
        return sum(len(x.encode()) for x in v)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(x) for k, x in v.items())
    return len(str(v))


def item_bytes(attributes: dict) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in attributes.items())


def _capture():
    """Record what every committed transaction wrote: its puts' write units and the keys of its
    updates, deletes and condition checks (sized after the measured window, so reading them is not
    counted as the order's requests). A transaction's condition check is charged as a write."""
    from chalicelib.storage import tx as txmod
    written: list[tuple[int, list]] = []
    original = txmod.Tx.attempt

    def attempt(self):
        failed = original(self)
        if not failed:
            t = self._tx
            written.append((sum(2 * math.ceil(item_bytes(p["Item"]) / 1024) for p in t._put_items),
                            [u["Key"] for u in t._update_items + t._delete_items + t._condition_check_items]))
        return failed
    txmod.Tx.attempt = attempt
    return written


def _units(written: list) -> int:
    from chalicelib import aws
    from chalicelib.storage.models import Item
    total = 0
    for put_units, keys in written:
        total += put_units
        for key in keys:
            after = aws.client("dynamodb").get_item(TableName=Item.Meta.table_name, Key=key, ConsistentRead=True)
            total += 2 * math.ceil(max(1, item_bytes(after.get("Item", {}))) / 1024)
    return total


class ReadUnits:
    """Read units of every DynamoDB read, by DynamoDB's rules, from the responses themselves: a
    GetItem or each key of a BatchGetItem 1 unit per started 4 KB of its item (at least 1, found or
    not: the upper reading of the pricing rule), half that
    when eventually consistent; a Query (or Scan) page the total size of the items it returned, in
    started 4 KB, the same halving. Hooked on every client (botocore events), like bench.counting."""

    def __init__(self) -> None:
        import botocore.session
        self.units, self.items = 0.0, 0
        original = botocore.session.Session.create_client
        meter = self

        def create_client(session, *args, **kwargs):
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call.dynamodb", meter._before)
            client.meta.events.register("after-call.dynamodb", meter._after)
            return client
        botocore.session.Session.create_client = create_client

    @staticmethod
    def _before(params, context, model, **_):
        body = params.get("body") or b"{}"
        request = json.loads(body if isinstance(body, (str, bytes)) else b"{}")
        context["siyu_keys"] = sum(len(k.get("Keys", [])) for k in request.get("RequestItems", {}).values()
                                   if isinstance(k, dict))
        context["siyu_consistent"] = (request.get("ConsistentRead")
                                      or any(k.get("ConsistentRead") for k in request.get("RequestItems", {}).values()
                                             if isinstance(k, dict)))

    def _after(self, parsed, context, model, **_):
        factor = 1.0 if context.get("siyu_consistent") else 0.5
        name = model.name
        if name == "GetItem":
            self.units += factor * max(1, math.ceil(item_bytes(parsed.get("Item", {})) / 4096))
        elif name == "BatchGetItem":
            found = [i for items in parsed.get("Responses", {}).values() for i in items]
            self.units += sum(factor * max(1, math.ceil(item_bytes(i) / 4096)) for i in found)
            self.units += factor * max(0, context.get("siyu_keys", 0) - len(found))     # a key not found: 1 unit
        elif name in ("Query", "Scan"):
            size = sum(item_bytes(i) for i in parsed.get("Items", []))
            self.items += len(parsed.get("Items", []))
            self.units += factor * max(1, math.ceil(size / 4096))


def _day(offset: int) -> str:
    from datetime import datetime, timedelta, timezone
    return (datetime.now(timezone.utc) + timedelta(days=offset)).date().isoformat()


STORES = 20
DAYS = 31
SIZES = ((1_000, 10_000), (10_000, 100_000))      # (members, orders): 10x apart


def _brand(brand_id: str, stores: int) -> None:
    """A brand like the demo one (its own WeChat app ids), with `stores` stores."""
    from chalicelib.services import admin
    from siyu_dev.__main__ import DEMO_BRAND
    body = json.loads(json.dumps(DEMO_BRAND))
    body["brand_id"] = brand_id
    for kind, app in body["wechat"].items():
        app["corp_id" if kind == "wecom" else "app_id"] = f"wx{kind}{brand_id}"
    admin.create_brand(body)
    for n in range(stores):
        admin.create_store(brand_id, {"store_id": f"st-{n:02d}", "name": f"Store {n}", "city": "Shenzhen"})


def fill(brand_id: str, members: int, orders: int, *, today: str) -> int:
    """The scoreboard counters `members` joins and `orders` orders leave (domain.scoreboard's deltas,
    each on the shard storage.scoreboard's hash of its id picks), over DAYS days and STORES stores,
    a guide and a channel code a store, 70% of orders by members, 10% online. Added up per
    counter item and written whole (BatchWriteItem, for speed): the items a stats read meets
    are exactly those the services' ADDs would leave. The order and member items themselves are not
    written: no read of the scoreboard touches them. Returns the counter items written."""
    from datetime import date, timedelta
    from chalicelib.domain import scoreboard as score
    from chalicelib.storage import scoreboard as counters
    from chalicelib.storage.models import ScoreCounter
    rng = __import__("random").Random(members)
    last = date.fromisoformat(today)
    days = [(last - timedelta(days=n)).isoformat() for n in range(DAYS)]
    tz_day = {d: d for d in days}
    items: dict[tuple, dict[str, int]] = {}

    def add(deltas, shard: int) -> None:
        for dim, day, key, metrics in deltas:
            into = items.setdefault((dim, day, key, shard), {})
            for name, value in metrics.items():
                into[name] = into.get(name, 0) + value
    cohorts, numbers = [], []
    for m in range(members):
        store = rng.randrange(STORES)
        cohort = score.Cohort(day=tz_day[rng.choice(days)],
                              keys=score.Keys(f"st-{store:02d}", f"g-{store:02d}", f"S{store:02d}"))
        cohorts.append(cohort)
        numbers.append(0)
        add(score.joined(cohort), counters.shard_of(f"m{m}"))
    for o in range(orders):
        member = rng.randrange(members) if rng.random() < 0.7 else None
        store = None if rng.random() < 0.1 else f"st-{rng.randrange(STORES):02d}"
        cohort = cohorts[member] if member is not None else None
        if member is not None:
            numbers[member] += 1
        where = score.Keys(store, cohort.keys.guide if cohort else None, cohort.keys.channel if cohort else None)
        add(score.order_recorded(day=rng.choice(days), amount_cents=rng.randrange(1000, 20_000), where=where,
                                 number=numbers[member] if member is not None else None, member=cohort),
            counters.shard_of(f"o{o}"))
    with ScoreCounter.batch_write() as batch:
        for (dim, day, key, shard), metrics in items.items():
            batch.save(ScoreCounter(*counters.counter_key(brand_id, dim, day, key, shard), day=day, score_key=key,
                                    **{name: value for name, value in metrics.items() if value}))
    return len(items)


def run() -> list[tuple[str, str]]:
    from bench import counting
    from bench.coupons import _member, _setup
    reads = ReadUnits()             # before any client is made, as counting.install
    stack = _setup()
    # a stats read of 31 days x 20 stores is one Query of ~2,600 counter items: the emulator (moto,
    # serialized) can take longer than its usual 30 s to answer it on a shared, loaded machine
    from chalicelib.storage.models import allow_slow_storage
    allow_slow_storage(300)
    try:
        from chalicelib.services import coupons, orders
        written = _capture()
        _member("o_warm")
        orders.record_at_till("demo", "sz-futian", {"order_id": "warm", "amount_cents": 100}, "warm")
        session = _member("o_bench")
        code = coupons.my_member_code("demo", session)["member_code"]
        lines = [{"sku": f"sku-{i}", "name": "x" * 100, "quantity": 1, "unit_price_cents": 100} for i in range(100)]
        cases = [
            ("walk-in order", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "w1", "amount_cents": 100}, "k0")),
            ("member order (member_code)", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "o1", "amount_cents": 100, "member_code": code}, "k1")),
            ("member order with 100 item lines (the most an order holds)", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "o2", "amount_cents": 10_000, "member_code": code, "items": lines},
                "k2")),
            ("retried order (replayed answer)", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "o1", "amount_cents": 100, "member_code": code}, "k1")),
            ("refund", lambda: orders.refund_at_till(
                "demo", "sz-futian", "o1", {"refund_id": "r1", "amount_cents": 50}, "k3")),
            ("imported order, member by openid", lambda: orders.import_orders("demo", {"orders": [
                {"order_id": "i1", "amount_cents": 100, "store_id": "sz-futian", "openid": "o_bench"}]})),
        ]
        touched = _member("o_touched")
        touched_code = coupons.my_member_code("demo", touched)["member_code"]
        cases += [
            ("member order counted for 1 campaign run (sent)", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "c1", "amount_cents": 100, "member_code": touched_code}, "k4"),
             lambda: _touch("o_touched", 1)),
            ("member order counted for 5 campaign runs (the most; 7 marked the member)", lambda: orders.record_at_till(
                "demo", "sz-futian", {"order_id": "c5", "amount_cents": 100, "member_code": touched_code}, "k5"),
             lambda: _touch("o_touched", 6)),
            ("full refund of an order counted for 5 campaign runs", lambda: orders.refund_at_till(
                "demo", "sz-futian", "c5", {"refund_id": "rc5", "amount_cents": 100}, "k6")),
        ]
        rows = []
        for label, call, *setup in cases:
            for step in setup:
                step()                  # outside the measured window
            rows.append((f"AWS requests per {label}", _measure(call, written, reads)))
        rows += _stats_at_two_sizes(written, reads)
        return rows
    finally:
        stack.stop()


_TOUCHED: list[str] = []


def _touch(openid: str, campaigns: int) -> None:
    """`campaigns` more campaigns whose run marked the member `sent` on their reach item (as the
    ledger's claim does), each an hour before the last; set up outside the measured window."""
    from datetime import datetime, timedelta, timezone
    from chalicelib.services import campaigns as campaign_service
    from chalicelib.storage import ledger, members
    now = datetime.now(timezone.utc)
    member_id = members.find_member_id("demo", "mp", openid)
    for _ in range(campaigns):
        cid = campaign_service.create_campaign("demo", {
            "name": "bench", "message": {"medium": "mp_subscribe", "template_id": "TPL_bench", "page": "pages/x",
                                         "data": {"thing1": "x"}},
            "schedule": {"at": (now + timedelta(hours=1)).isoformat()}, "attribution_days": 7})["campaign_id"]
        _TOUCHED.append(cid)
        run = ledger.Ledger("demo", cid, "once")
        at = int((now - timedelta(hours=len(_TOUCHED))).timestamp())
        run.claim(ledger.Claim(member_id, ledger.reach_key("demo", member_id),
                               ledger.Mark("c", ledger.new_group(), at + 60, at)))


def _measure(call, written: list, reads: ReadUnits) -> str:
    from bench import counting
    written.clear()
    units = reads.units
    with counting.Window() as w:
        call()
    units = reads.units - units
    detail = ", ".join(f"{op.split('.', 1)[1]} {k}" for op, k in sorted(w.by_operation.items()))
    return f"{w.total} ({detail}); {units:g} RCU, {_units(written)} WCU"


def _stats_at_two_sizes(written: list, reads: ReadUnits) -> list[tuple[str, str]]:
    """A stats read of DAYS days x STORES stores, by store and by day, on two brands whose counters are
    those of SIZES members and orders (10x apart), measured in the same run."""
    from bench import counting
    from chalicelib.services import scoreboard
    from chalicelib.storage import tenancy
    today, first = _day(0), _day(-(DAYS - 1))
    figures: dict[str, list[str]] = {}
    setup = []
    for members, orders in SIZES:
        brand_id = f"bench{members}"
        _brand(brand_id, STORES)
        started = time.monotonic()
        counter_items = fill(brand_id, members, orders, today=today)
        setup.append(f"{members:,} members / {orders:,} orders: {counter_items:,} counter items in "
                     f"{time.monotonic() - started:.0f} s")
        tenancy.require_brand(brand_id)                     # the brand's cache warm, as in a warm container
        for by in ("store", "day"):
            units, items, started = reads.units, reads.items, time.perf_counter()
            with counting.Window() as w:
                answer = scoreboard.stats(brand_id, {"from": first, "to": today, "by": by})
            took = (time.perf_counter() - started) * 1000
            assert answer["totals"]["orders"] == orders and answer["totals"]["new_members"] == members
            figures.setdefault(by, []).append(
                f"{w.total} requests ({', '.join(f'{op.split(chr(46), 1)[1]} {k}' for op, k in sorted(w.by_operation.items()))}), "
                f"{reads.units - units:g} RCU, {reads.items - items:,} items, {len(answer['rows'])} rows, {took:.0f} ms "
                f"at {members:,} members / {orders:,} orders")
    rows = [(f"stats read, {DAYS} days x {STORES} stores, by={by} (two sizes, 10x apart)", " vs ".join(f))
            for by, f in figures.items()]
    rows.append(("stats read sizes: counters as the services leave them (bench.orders.fill)", "; ".join(setup)))
    return rows
