"""Orders and refunds: what a till or an import may send, and what an order tells the bus. Pure.

Bounds, and why:
- an amount is a whole number of cents, 1 .. MAX_AMOUNT_CENTS (one million yuan: far above any
  till receipt, and small enough that a member's lifetime total stays an exact integer anywhere);
- at most MAX_ITEMS lines (each at most ~250 bytes stored, so an order item stays near 25 KB, far
  inside DynamoDB's 400 KB) and MAX_REDEMPTIONS linked redemptions (each one more item in the
  order's transaction: with the idempotency record, order, member and outbox that is at most 14 of
  DynamoDB's 100, leaving the scoreboard's day-keyed counters room in the same transaction);
- an order's time lies in times.window and at most MAX_CLOCK_SKEW ahead of now (a till's clock may
  run a little fast; an order next week is a typo).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from chalicelib import ids
from chalicelib.domain.coupons import parse_time
from chalicelib.errors import BadRequest

MAX_AMOUNT_CENTS = 100_000_000
MAX_ITEMS = 100
MAX_QUANTITY = 10_000
MAX_ITEM_NAME = 100
MAX_REDEMPTIONS = 10
MAX_IMPORT_ORDERS = 500
MAX_IMPORT_REFUNDS = 500
MAX_CLOCK_SKEW = timedelta(hours=24)

POS_FIELDS = {"order_id", "amount_cents", "member_code", "member_id", "guide_id", "till_id", "occurred_at",
              "redemption_ids", "items"}
IMPORT_FIELDS = (POS_FIELDS - {"member_code"}) | {"store_id", "unionid", "openid"}
REFUND_FIELDS = {"refund_id", "amount_cents"}
IMPORT_REFUND_FIELDS = REFUND_FIELDS | {"order_id", "occurred_at"}


@dataclass(frozen=True)
class Line:
    sku: str
    name: str | None
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Order:
    order_id: str
    amount_cents: int
    store_id: str | None                      # None: an online order (imports only)
    occurred_at: datetime
    member_code: str | None = None            # who: at most one of these four
    member_id: str | None = None
    unionid: str | None = None
    openid: str | None = None
    guide_id: str | None = None
    till_id: str | None = None
    redemption_ids: tuple[str, ...] = ()
    items: tuple[Line, ...] = field(default=())
    time_given: bool = False                  # occurred_at came from the caller (else: when first received)


@dataclass(frozen=True)
class Refund:
    order_id: str
    refund_id: str
    amount_cents: int
    occurred_at: datetime
    time_given: bool = False


def amount(value: object, field_name: str = "amount_cents") -> int:
    """A positive whole number of cents (a JSON integer, never a bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT_CENTS:
        raise BadRequest(f"{field_name} must be a whole number of cents, 1 to {MAX_AMOUNT_CENTS}",
                         code="invalid_" + field_name)
    return value


def _unknown_fields(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(f"unknown field(s): {', '.join(extra[:5])}", code="unknown_field")


def _occurred_at(value: object, now: datetime) -> datetime:
    if value is None:
        return now
    moment = parse_time(value, "occurred_at", now)
    if moment > now + MAX_CLOCK_SKEW:
        raise BadRequest("occurred_at is in the future", code="invalid_occurred_at")
    return moment


def _items(value: object) -> tuple[Line, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise BadRequest(f"items must be a list of at most {MAX_ITEMS} lines", code="invalid_items")
    lines = []
    for line in value:
        if not isinstance(line, dict) or set(line) - {"sku", "name", "quantity", "unit_price_cents"}:
            raise BadRequest("each item is {sku, name?, quantity, unit_price_cents}", code="invalid_items")
        name = line.get("name")
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_ITEM_NAME
                                 or not name.isprintable()):
            raise BadRequest(f"an item's name is 1-{MAX_ITEM_NAME} printable characters", code="invalid_items")
        quantity, price = line.get("quantity"), line.get("unit_price_cents")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
            raise BadRequest(f"an item's quantity is a whole number, 1 to {MAX_QUANTITY}", code="invalid_items")
        if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= MAX_AMOUNT_CENTS:
            raise BadRequest(f"an item's unit_price_cents is a whole number, 0 to {MAX_AMOUNT_CENTS}",
                             code="invalid_items")
        lines.append(Line(sku=ids.external(line.get("sku"), "sku"), name=name, quantity=quantity,
                          unit_price_cents=price))
    return tuple(lines)


def _redemption_ids(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if (not isinstance(value, list) or len(value) > MAX_REDEMPTIONS
            or not all(ids.minted(v) for v in value) or len(set(value)) != len(value)):
        raise BadRequest(f"redemption_ids must be a list of at most {MAX_REDEMPTIONS} distinct redemption ids",
                         code="invalid_redemption_ids")
    return tuple(value)


def _optional(body: dict, name: str, check) -> str | None:
    value = body.get(name)
    return None if value is None else check(value, name)


def order(body: object, *, store_id: str | None, now: datetime, imported: bool = False) -> Order:
    """An order from a till (`store_id` from the path, the member by `member_code` or `member_id`) or
    from an import (`store_id` in the body, null online; the member by member_id, unionid or openid)."""
    if not isinstance(body, dict):
        raise BadRequest("an order is a JSON object", code="invalid_order")
    _unknown_fields(body, IMPORT_FIELDS if imported else POS_FIELDS)
    who = [name for name in ("member_code", "member_id", "unionid", "openid") if body.get(name) is not None]
    if len(who) > 1:
        raise BadRequest("name the member once: " + " or ".join(who), code="ambiguous_member")
    if imported:
        if "store_id" not in body:
            raise BadRequest("store_id is required (null for an online order)", code="invalid_store_id")
        store_id = _optional(body, "store_id", ids.slug)
    member_code = body.get("member_code")
    if member_code is not None and (not isinstance(member_code, str) or not 0 < len(member_code) <= 200):
        raise BadRequest("member_code is the code from the member's mini-program", code="invalid_member_code")
    return Order(order_id=ids.external(body.get("order_id"), "order_id"), amount_cents=amount(body.get("amount_cents")),
                 store_id=store_id, occurred_at=_occurred_at(body.get("occurred_at"), now), member_code=member_code,
                 member_id=_optional(body, "member_id", _member_id),
                 unionid=_optional(body, "unionid", ids.identity), openid=_optional(body, "openid", ids.identity),
                 guide_id=_optional(body, "guide_id", ids.slug), till_id=_optional(body, "till_id", ids.external),
                 redemption_ids=_redemption_ids(body.get("redemption_ids")), items=_items(body.get("items")),
                 time_given=body.get("occurred_at") is not None)


def _member_id(value: object, name: str) -> str:
    if not ids.minted(value):
        raise BadRequest(f"{name} is not a member id", code="invalid_" + name)
    return value


def refund(body: object, *, order_id: str | None, now: datetime) -> Refund:
    """A refund at the till (`order_id` from the path) or in an import (`order_id` in the body)."""
    if not isinstance(body, dict):
        raise BadRequest("a refund is a JSON object", code="invalid_refund")
    _unknown_fields(body, IMPORT_REFUND_FIELDS if order_id is None else REFUND_FIELDS)
    return Refund(order_id=order_id if order_id is not None else ids.external(body.get("order_id"), "order_id"),
                  refund_id=ids.external(body.get("refund_id"), "refund_id"),
                  amount_cents=amount(body.get("amount_cents")),
                  occurred_at=_occurred_at(body.get("occurred_at"), now) if order_id is None else now,
                  time_given=order_id is None and body.get("occurred_at") is not None)


def request_hash(value: Order | Refund) -> str:
    """What a replay must repeat: the parsed request (so `{"a":1,"b":2}` and `{"b":2,"a":1}` are one
    request), with a time the caller did not give left out (it is the moment of the first try)."""
    fields = asdict(value)
    fields["occurred_at"] = value.occurred_at.isoformat() if value.time_given else None
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def refund_refusal(order_amount_cents: int, refunded_cents: int, amount_cents: int) -> str | None:
    """Refunds of an order never exceed its amount (the storage condition enforces it under races)."""
    return "refund_exceeds_order" if refunded_cents + amount_cents > order_amount_cents else None


@dataclass(frozen=True)
class MemberTotals:
    """A member's order totals as read, and the conditional increment an order makes of them."""
    orders: int
    first_order_at: str | None
    last_order_at: str | None

    def after(self, occurred_at: str) -> "MemberTotals":
        """The totals once an order at `occurred_at` is recorded (an import may bring older orders in
        after newer ones: first/last are the earliest and latest times, whatever the recording order)."""
        return MemberTotals(orders=self.orders + 1,
                            first_order_at=min(filter(None, (self.first_order_at, occurred_at))),
                            last_order_at=max(filter(None, (self.last_order_at, occurred_at))))


@dataclass(frozen=True)
class Attribution:
    """Who an order is credited to: its store, its guide (the order's, else the member's first-touch
    guide) and its channel (the member's first-touch scene)."""
    member_id: str | None
    store_id: str | None
    guide_id: str | None
    channel: str | None


def attribution(o: Order, member_id: str | None, first_touch: dict | None) -> Attribution:
    first_touch = first_touch or {}
    return Attribution(member_id=member_id, store_id=o.store_id,
                       guide_id=o.guide_id or (first_touch.get("guide_id") if member_id else None),
                       channel=first_touch.get("scene") if member_id else None)


def recorded_event(brand_id: str, o: Order, who: Attribution, number: int | None, occurred_at: str,
                   source: str) -> dict:
    """The `order.recorded` event's detail."""
    return {"brand_id": brand_id, "order_id": o.order_id, "member_id": who.member_id, "store_id": who.store_id,
            "guide_id": who.guide_id, "channel": who.channel, "amount_cents": o.amount_cents,
            "member_order_number": number, "first_order": number == 1, "occurred_at": occurred_at,
            "till_id": o.till_id, "redemption_ids": list(o.redemption_ids), "source": source}


def refunded_event(brand_id: str, r: Refund, who: Attribution, *, order_amount_cents: int, refunded_cents: int,
                   number: int | None, occurred_at: str) -> dict:
    """The `order.refunded` event's detail (`refunded_cents`: the order's refunds so far, this one included)."""
    return {"brand_id": brand_id, "order_id": r.order_id, "refund_id": r.refund_id, "member_id": who.member_id,
            "store_id": who.store_id, "guide_id": who.guide_id, "channel": who.channel,
            "amount_cents": r.amount_cents, "order_amount_cents": order_amount_cents,
            "refunded_cents": refunded_cents, "member_order_number": number, "occurred_at": occurred_at}
