"""Order storage. An order or a refund is one TransactWriteItems whose conditions carry the rules:

- the order (refund) id is new in the brand: `order_exists` / `refund_exists`, or a duplicate for an import;
- the idempotency key (a till's requests) is unused: a retry replays the first answer;
- the member's order count is still the one read: `member_order_number` is that count + 1, so two
  concurrent orders of one member never share a number (the loser reads again and retries);
- an order's refunded total is still the one read, and stays within the amount: never over-refunded;
- each linked redemption is this store's, not reversed, and not linked to another order.

In the same transaction: the member's totals and the `order.recorded` / `order.refunded` outbox
event. At most 4 + MAX_REDEMPTIONS (10) + 2 checks = 16 items of DynamoDB's 100, about 30 KB of its
4 MB: `extend` (the scoreboard's day-keyed counters) adds its own items to the same transaction.

AWS cost: an order is one BatchGetItem (idempotency record, member, redemptions) and one
TransactWriteItems; a refund one BatchGetItem (record, order, refund) and one TransactWriteItems.
A race for a member's number or an order's refunded total costs one more of each per lost race.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

from chalicelib.domain import orders as rules
from chalicelib.storage.coupons import IDEMPOTENCY_RETENTION, idem_pk, iso
from chalicelib.storage.members import member_key, outbox_item
from chalicelib.storage.models import (Guide, IdempotencyRecord, Item, Member, Order, OrderRefund, Redemption,
                                       Store)
from chalicelib.storage.tenancy import brand_pk
from chalicelib.storage.tx import Tx

Extend = Callable[[Tx], dict]      # adds items to an order's transaction; returns refusals for its labels


class KeyUsed(Exception):
    """The idempotency key was used by a request that committed first."""


class Exists(Exception):
    """The order (refund) id was recorded before."""


class Moved(Exception):
    """The member's order count (the order's refunded total) changed since it was read: read again."""


class RedemptionRefused(Exception):
    """A linked redemption is not this store's, was reversed, or belongs to another order."""


class UnknownStore(Exception):
    pass


class UnknownGuide(Exception):
    pass


class UnknownOrder(Exception):
    pass


IDEM_ORDER, IDEM_REFUND = "IDEM#ORDER", "IDEM#REFUND"


def order_key(brand_id: str, order_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#ORDER#{order_id}", "ORDER"


def refund_key(brand_id: str, refund_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#REFUND#{refund_id}", "REFUND"


def redemption_key(brand_id: str, redemption_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#RDM#{redemption_id}", "RDM"


def read(keys: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
    """One consistent BatchGetItem (at most 100 keys: an order reads at most 12)."""
    return {(i.pk, i.sk): i for i in Item.batch_get(keys, consistent_read=True)}


def idem_record(brand_id: str, store_id: str, key: str, kind: str) -> IdempotencyRecord | None:
    return read([(idem_pk(brand_id, store_id, key), kind)]).get((idem_pk(brand_id, store_id, key), kind))


def _remember(tx: Tx, brand_id: str, idem: tuple[str, str, str, str] | None, response: dict, now: datetime) -> None:
    """The answer under the till's Idempotency-Key (store, key, IDEM#ORDER|IDEM#REFUND, request hash)."""
    if idem is None:
        return
    store_id, key, kind, request_hash = idem
    tx.save("key", IdempotencyRecord(idem_pk(brand_id, store_id, key), kind, request_hash=request_hash, status=201,
                                     response=json.dumps(response, separators=(",", ":")),
                                     expires_at=now + IDEMPOTENCY_RETENTION),
            condition=IdempotencyRecord.pk.does_not_exist())


def record_order(brand_id: str, o: rules.Order, *, who: rules.Attribution, totals: rules.MemberTotals | None,
                 source: str, idem: tuple[str, str, str, str] | None, response: dict, now: datetime,
                 check_store: bool, check_guide: bool, extend: Extend | None = None,
                 template_ids: list[str] | None = None, conversions: list[str] | None = None) -> None:
    """Record `o` for `who` (totals: the member's as read, None for a walk-in; template_ids: the coupon
    templates of its redemptions, kept so that a refund takes the order's GMV off theirs). Raises KeyUsed, Exists,
    Moved, RedemptionRefused, UnknownStore or UnknownGuide; storage.tx.Conflicted on a concurrent
    transaction (both Moved and Conflicted: read again and retry)."""
    occurred = iso(o.occurred_at)
    number = totals.orders + 1 if totals is not None else None
    tx = Tx()
    _remember(tx, brand_id, idem, response, now)
    tx.save("order", Order(*order_key(brand_id, o.order_id), brand_id=brand_id, order_id=o.order_id,
                           store_id=o.store_id, member_id=who.member_id, guide_id=who.guide_id, channel=who.channel,
                           member_order_number=number, amount_cents=o.amount_cents, refunded_cents=0,
                           occurred_at=occurred, recorded_at=iso(now), source=source, till_id=o.till_id,
                           redemption_ids=list(o.redemption_ids) or None, template_ids=template_ids or None,
                           conversions=conversions or None,
                           items=json.dumps([vars(line) for line in o.items], ensure_ascii=False,
                                            separators=(",", ":")) if o.items else None),
            condition=Order.pk.does_not_exist())
    if totals is not None:
        after = totals.after(occurred)
        unchanged = Member.orders.does_not_exist() if totals.orders == 0 else Member.orders == totals.orders
        tx.update("member", Member(member_key(brand_id, who.member_id), "MEMBER"), [
            Member.orders.set(after.orders), Member.gmv_cents.add(o.amount_cents),
            Member.first_order_at.set(after.first_order_at), Member.last_order_at.set(after.last_order_at)],
            condition=Member.pk.exists() & unchanged)
    for redemption_id in o.redemption_ids:
        tx.update("redemption", Redemption(*redemption_key(brand_id, redemption_id)),
                  [Redemption.linked_order_id.set(o.order_id)],
                  condition=(Redemption.pk.exists() & (Redemption.store_id == o.store_id)
                             & Redemption.reversed_at.does_not_exist()
                             & (Redemption.linked_order_id.does_not_exist()
                                | (Redemption.linked_order_id == o.order_id))))
    if check_store and o.store_id is not None:
        tx.check("store", Store, brand_pk(brand_id), f"STORE#{o.store_id}", condition=Store.pk.exists())
    if check_guide and o.guide_id is not None:
        tx.check("guide", Guide, brand_pk(brand_id), f"GUIDE#{o.guide_id}", condition=Guide.pk.exists())
    tx.save("outbox", outbox_item("event", "order.recorded", brand_id,
                                  rules.recorded_event(brand_id, o, who, number, occurred, source), now))
    refusals = extend(tx) if extend else {}
    tx.commit({"key": KeyUsed(), "order": Exists(), "store": UnknownStore(), "guide": UnknownGuide(),
               "redemption": RedemptionRefused(), "member": Moved(), **refusals})


def record_refund(brand_id: str, r: rules.Refund, order: Order, *, idem: tuple[str, str, str, str] | None,
                  response: dict, now: datetime, extend: Extend | None = None) -> None:
    """Record `r` against `order` as read: its refunded total must still be the one read (so the
    event's running total is exact) and, with this refund, within its amount. Raises KeyUsed, Exists
    or Moved (read the order again: Moved with a total that no longer fits is refund_exceeds_order)."""
    refunded = int(order.refunded_cents or 0)
    who = rules.Attribution(member_id=order.member_id, store_id=order.store_id, guide_id=order.guide_id,
                            channel=order.channel)
    tx = Tx()
    _remember(tx, brand_id, idem, response, now)
    tx.save("refund", OrderRefund(*refund_key(brand_id, r.refund_id), brand_id=brand_id, refund_id=r.refund_id,
                                  order_id=r.order_id, amount_cents=r.amount_cents, occurred_at=iso(r.occurred_at),
                                  recorded_at=iso(now)),
            condition=OrderRefund.pk.does_not_exist())
    tx.update("order", Order(order.pk, order.sk), [Order.refunded_cents.set(refunded + r.amount_cents)],
              condition=Order.pk.exists() & (Order.refunded_cents == refunded)
              & (Order.amount_cents >= refunded + r.amount_cents))
    if order.member_id:
        tx.update("member", Member(member_key(brand_id, order.member_id), "MEMBER"),
                  [Member.gmv_cents.add(-r.amount_cents), Member.refunded_cents.add(r.amount_cents)],
                  condition=Member.pk.exists())
    tx.save("outbox", outbox_item("event", "order.refunded", brand_id, rules.refunded_event(
        brand_id, r, who, order_amount_cents=int(order.amount_cents), refunded_cents=refunded + r.amount_cents,
        number=int(order.member_order_number) if order.member_order_number is not None else None,
        occurred_at=iso(r.occurred_at)), now))
    refusals = extend(tx) if extend else {}
    tx.commit({"key": KeyUsed(), "refund": Exists(), "order": Moved(), **refusals})
