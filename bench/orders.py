"""Order figures: AWS requests and write units per till order, refund, replay and imported order.

Write units are worked out from what each transaction writes, by DynamoDB's pricing rule for
transactions (2 WCU per item per started KB; an update is charged on the larger of the item before
and after, taken here as after), with item sizes by DynamoDB's sizing rule; the emulator reports none.
"""
from __future__ import annotations

import math


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
    """Record what every committed transaction wrote: its puts' write units and its updates' keys
    (sized after the measured window, so reading them is not counted as the order's requests)."""
    from chalicelib.storage import tx as txmod
    written: list[tuple[int, list]] = []
    original = txmod.Tx.attempt

    def attempt(self):
        failed = original(self)
        if not failed:
            written.append((sum(2 * math.ceil(item_bytes(p["Item"]) / 1024) for p in self._tx._put_items),
                            [u["Key"] for u in self._tx._update_items]))
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
            total += 2 * math.ceil(item_bytes(after.get("Item", {})) / 1024)
    return total


def _day(offset: int) -> str:
    from datetime import datetime, timedelta, timezone
    return (datetime.now(timezone.utc) + timedelta(days=offset)).date().isoformat()


def run() -> list[tuple[str, str]]:
    from bench import counting
    from bench.coupons import _member, _setup
    stack = _setup()
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
        from chalicelib.services import scoreboard
        cases += [
            ("stats read, 31 days by store", lambda: scoreboard.stats(
                "demo", {"from": _day(-30), "to": _day(0), "by": "store"})),
            ("stats read, 366 days by day", lambda: scoreboard.stats(
                "demo", {"from": _day(-365), "to": _day(0), "by": "day"})),
        ]
        rows = []
        for label, call in cases:
            written.clear()
            with counting.Window() as w:
                call()
            detail = ", ".join(f"{op.split('.', 1)[1]} {k}" for op, k in sorted(w.by_operation.items()))
            rows.append((f"AWS requests per {label}", f"{w.total} ({detail}); {_units(written)} WCU"))
        return rows
    finally:
        stack.stop()
