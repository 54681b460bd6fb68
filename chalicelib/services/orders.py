"""Orders and refunds from the till (POS key, Idempotency-Key) and from an ERP or online shop (admin import).

Each order or refund is one transaction (storage.orders): the order, the member's totals and the
outbox event together. A till's request replays the first answer for its Idempotency-Key, as
redemptions do; an import is idempotent per order_id and refund_id.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from chalicelib.domain import conversion as conv_rules
from chalicelib.domain import orders as rules
from chalicelib.domain import scoreboard as score
from chalicelib.errors import ApiError, BadRequest, Conflict, NotFound
from chalicelib.observability import count
from chalicelib.services import coupons
from chalicelib.storage import conversion, members, tenancy
from chalicelib.storage import orders as order_store
from chalicelib.storage import scoreboard as counters
from chalicelib.storage.coupons import idem_pk
from chalicelib.storage.coupons import parse as parse_time
from chalicelib.storage.members import member_key
from chalicelib.storage.tx import Conflicted

RACE_RETRIES = 30          # reads + conditional writes one order may spend racing for a member's number
IMPORT_PARALLEL = 8        # orders of one import in flight at once
IDENTITY_NAMESPACES = {"unionid": ("unionid",), "openid": ("oa", "mp")}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _idem_key(value: str | None) -> str:
    if not value or len(value) > 128 or not value.isprintable():
        raise BadRequest("send an Idempotency-Key header (order id or request number), 1-128 characters",
                         code="missing_idempotency_key")
    return value


def _replay(record, request_hash: str) -> tuple[int, dict]:
    return coupons._replay(record, request_hash)


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))


def _totals(member) -> rules.MemberTotals:
    return rules.MemberTotals(orders=int(member.orders or 0), first_order_at=member.first_order_at,
                              last_order_at=member.last_order_at)


def _first_touch(member) -> dict:
    touch = member.first_touch
    return ({"store_id": touch.store_id, "guide_id": touch.guide_id, "scene": touch.scene}
            if touch is not None else {})


def _cohort(member, tz: str) -> score.Cohort:
    return score.cohort(member.joined_at, _first_touch(member), tz)


def _order_counters(brand_id: str, o: rules.Order, who: rules.Attribution, number: int | None, member,
                    tz: str, found: dict):
    """The scoreboard counters this order moves, to ride in its transaction (storage.scoreboard): and
    the `order_gmv_cents` of the coupon templates whose redemptions it carries."""
    day = score.local_day(o.occurred_at, tz)
    deltas = score.order_recorded(day=day, amount_cents=o.amount_cents,
                                  where=score.Keys(who.store_id, who.guide_id, who.channel), number=number,
                                  member=_cohort(member, tz) if member is not None else None)
    deltas += score.order_carried(day=day, store_id=o.store_id, amount_cents=o.amount_cents,
                                  template_ids=_templates(brand_id, o, found))
    return counters.extender(brand_id, deltas, counters.shard_of(o.order_id))


def _templates(brand_id: str, o: rules.Order, found: dict) -> list[str]:
    """The coupon templates of the order's redemptions, distinct and sorted (kept on the order)."""
    return sorted({found[order_store.redemption_key(brand_id, r)].template_id for r in o.redemption_ids})


def _check_redemptions(o: rules.Order, found: dict, brand_id: str) -> None:
    """Refuse, before writing, redemptions that are not this store's or are spoken for (the
    transaction's conditions refuse the same under a race)."""
    for redemption_id in o.redemption_ids:
        r = found.get(order_store.redemption_key(brand_id, redemption_id))
        if r is None or o.store_id is None or r.store_id != o.store_id:
            raise NotFound(f"no redemption {redemption_id} at this store", code="unknown_redemption")
        if r.reversed_at is not None:
            raise Conflict(f"redemption {redemption_id} was reversed", code="redemption_reversed")
        if r.linked_order_id is not None and r.linked_order_id != o.order_id:
            raise Conflict(f"redemption {redemption_id} belongs to order {r.linked_order_id}",
                           code="redemption_linked")


def _record(brand_id: str, o: rules.Order, member_id: str | None, *, source: str,
            idem: tuple[str, str, str, str] | None, check_store: bool, tz: str) -> dict:
    """Read, decide, write; again while another order of the member took the number read."""
    keys = [order_store.redemption_key(brand_id, r) for r in o.redemption_ids]
    if member_id:
        keys.append((member_key(brand_id, member_id), "MEMBER"))
    if idem:
        keys.append(_idem_record_key(brand_id, idem))
    for attempt in range(RACE_RETRIES):
        # a member's reach item rides in the same read (its campaign marks); a walk-in's read is unchanged
        found, marks = conversion.read_with_reach(keys, brand_id, member_id) if member_id else (order_store.read(keys), {})
        _replay_if_recorded(found, brand_id, idem)
        member = found.get((member_key(brand_id, member_id), "MEMBER")) if member_id else None
        if member_id and member is None:
            raise NotFound("no such member", code="unknown_member")
        converts = (conversion.attribute(brand_id, member_id, {**marks, **conversion.credit_marks(
            brand_id, member.mp_openid)}, o.occurred_at, o.amount_cents) if member_id else [])
        _check_redemptions(o, found, brand_id)
        who = rules.attribution(o, member_id, _first_touch(member) if member else None)
        totals = _totals(member) if member else None
        answer = {"order_id": o.order_id, "member_id": member_id,
                  "member_order_number": totals.orders + 1 if totals else None}
        try:
            order_store.record_order(brand_id, o, who=who, totals=totals, source=source, idem=idem, response=answer,
                               now=_now(), check_store=check_store, check_guide=o.guide_id is not None,
                               template_ids=_templates(brand_id, o, found),
                               conversions=conv_rules.encode_changes(converts),
                               extend=conversion.chain(
                                   _order_counters(brand_id, o, who, answer["member_order_number"], member, tz,
                                                   found),
                                   conversion.extender(brand_id, member_id, converts, o.order_id)))
            count("OrdersRecorded")
            return answer
        except (order_store.Moved, Conflicted, conversion.Refused):
            _backoff(attempt)
        except order_store.KeyUsed:
            continue                    # the next read finds the record and replays it
        except order_store.Exists:
            raise Conflict(f"order {o.order_id} was recorded before", code="order_exists") from None
        except order_store.RedemptionRefused:
            continue                    # read again: the refusal names the redemption
        except order_store.UnknownStore:
            raise NotFound(f"no store {o.store_id}", code="unknown_store") from None
        except order_store.UnknownGuide:
            raise NotFound(f"no guide {o.guide_id}", code="unknown_guide") from None
    raise Conflict("this member's orders are arriving faster than they can be numbered; retry", code="order_busy")


def _idem_record_key(brand_id: str, idem: tuple[str, str, str, str]) -> tuple[str, str]:
    """The key of an Idempotency-Key's record: idem is (scope, key, sk, body hash)."""
    return idem_pk(brand_id, idem[0], idem[1]), idem[2]


def _replay_if_recorded(found: dict, brand_id: str, idem: tuple[str, str, str, str] | None) -> None:
    """Raise _Replayed with the first answer when this Idempotency-Key was already used."""
    if idem:
        record = found.get(_idem_record_key(brand_id, idem))
        if record is not None:
            raise _Replayed(_replay(record, idem[3]))


class _Replayed(Exception):
    def __init__(self, answer: tuple[int, dict]):
        super().__init__()
        self.answer = answer


def record_at_till(brand_id: str, store_id: str, body: dict, idem_key: str | None) -> tuple[int, dict]:
    """POST /pos/{brand}/stores/{store}/orders: 201 `{order_id, member_id, member_order_number}`, the
    first answer again for a retry with the same Idempotency-Key and body."""
    idem_key = _idem_key(idem_key)
    brand = tenancy.require_brand(brand_id)
    o = rules.order(body, store_id=store_id, now=_now())
    request_hash = rules.request_hash(o)
    member_id = o.member_id
    if o.member_code is not None:
        member_id = coupons.member_code_owner(brand, o.member_code)
        if member_id is None:
            raise NotFound("member code unknown or expired: ask the shopper to refresh it", code="invalid_member_code")
    try:
        return 201, _record(brand_id, o, member_id, source="pos",
                            idem=(store_id, idem_key, order_store.IDEM_ORDER, request_hash), check_store=False,
                            tz=brand.timezone)
    except _Replayed as replayed:
        return replayed.answer


def _refund_counters(brand_id: str, r: rules.Refund, order, tz: str):
    """The counters a refund moves: the refund day's sales where the order was credited, the cohort
    of the order's member (read once: a member's join and first touch never change), and the
    `order_gmv_cents` of the templates whose redemptions the order carried (on the refund's day, at
    the order's store, as the sales)."""
    member = members.get_member(brand_id, order.member_id) if order.member_id else None
    day = score.local_day(r.occurred_at, tz)
    deltas = score.order_refunded(day=day, amount_cents=r.amount_cents,
                                  where=score.Keys(order.store_id, order.guide_id, order.channel),
                                  member=_cohort(member, tz) if member is not None else None)
    deltas += score.order_carried(day=day, store_id=order.store_id, amount_cents=-r.amount_cents,
                                  template_ids=list(order.template_ids or []))
    return counters.extender(brand_id, deltas, counters.shard_of(r.refund_id))


def _refund(brand_id: str, r: rules.Refund, *, store_id: str | None,
            idem: tuple[str, str, str, str] | None, tz: str) -> dict:
    keys = [order_store.order_key(brand_id, r.order_id), order_store.refund_key(brand_id, r.refund_id)]
    if idem:
        keys.append(_idem_record_key(brand_id, idem))
    extend = None
    for attempt in range(RACE_RETRIES):
        found = order_store.read(keys)
        _replay_if_recorded(found, brand_id, idem)
        order = found.get(order_store.order_key(brand_id, r.order_id))
        if order is None or (store_id is not None and order.store_id != store_id):
            raise NotFound(f"no order {r.order_id}" + (" at this store" if store_id else ""), code="unknown_order")
        if order_store.refund_key(brand_id, r.refund_id) in found:
            raise Conflict(f"refund {r.refund_id} was recorded before", code="refund_exists")
        if r.time_given and r.occurred_at < parse_time(order.occurred_at):
            # the refund's day is where the scoreboard takes the sales off: never before the sale
            raise BadRequest(f"occurred_at is before order {r.order_id}'s ({order.occurred_at})",
                             code="invalid_occurred_at")
        refusal = rules.refund_refusal(int(order.amount_cents), int(order.refunded_cents or 0), r.amount_cents)
        if refusal:
            raise Conflict(f"refunds of order {r.order_id} would exceed its {int(order.amount_cents)} cents "
                           f"({int(order.refunded_cents or 0)} refunded so far)", code=refusal)
        answer = {"refund_id": r.refund_id, "order_id": r.order_id, "amount_cents": r.amount_cents,
                  "refunded_cents": int(order.refunded_cents or 0) + r.amount_cents}
        try:
            extend = extend or _refund_counters(brand_id, r, order, tz)
            # the order's campaign conversions: its GMV back, and the order (and member) when refunded in full
            rolled = conversion.roll_back(brand_id, order.member_id, order.conversions, r.amount_cents,
                                          full=answer["refunded_cents"] == int(order.amount_cents))
            order_store.record_refund(brand_id, r, order, idem=idem, response=answer, now=_now(),
                                extend=conversion.chain(extend, conversion.extender(brand_id, order.member_id,
                                                                                    rolled, r.refund_id)))
            count("OrderRefunds")
            return answer
        except (order_store.Moved, Conflicted, conversion.Refused):
            _backoff(attempt)
        except (order_store.KeyUsed, order_store.Exists):
            continue                    # the next read replays the record or names the refund
    raise Conflict("this order's refunds are arriving faster than they can be applied; retry", code="order_busy")


def refund_at_till(brand_id: str, store_id: str, order_id: str, body: dict, idem_key: str | None) -> tuple[int, dict]:
    """POST /pos/{brand}/stores/{store}/orders/{order}/refunds: 201 `{refund_id, order_id, amount_cents,
    refunded_cents}`; 409 refund_exceeds_order when the order's refunds would pass its amount."""
    idem_key = _idem_key(idem_key)
    brand = tenancy.require_brand(brand_id)
    r = rules.refund(body, order_id=order_id, now=_now())
    try:
        return 201, _refund(brand_id, r, store_id=store_id,
                            idem=(store_id, idem_key, order_store.IDEM_REFUND, rules.request_hash(r)), tz=brand.timezone)
    except _Replayed as replayed:
        return replayed.answer


# ---- import ------------------------------------------------------------------------------------

def _import_member(brand_id: str, o: rules.Order) -> str | None:
    if o.member_id:
        return o.member_id
    for name in ("unionid", "openid"):
        value = getattr(o, name)
        if value:
            # every namespace the identity may be in, in one BatchGetItem (an openid: OA, then mini-program)
            found = members.load_touch_context(brand_id, scene=None,
                                               identities=[(ns, value) for ns in IDENTITY_NAMESPACES[name]]).found
            for ns in IDENTITY_NAMESPACES[name]:
                if (ns, value) in found:
                    return found[(ns, value)]
            raise NotFound(f"no member with {name} {value}", code="unknown_member")
    return None


def _import_one(brand_id: str, row: object, now: datetime, tz: str) -> str | ApiError:
    """'accepted', 'duplicate' or the refusal of one row; one bad row never stops the others."""
    try:
        o = rules.order(row, store_id=None, now=now, imported=True)
        _record(brand_id, o, _import_member(brand_id, o), source="import", idem=None, check_store=True, tz=tz)
        return "accepted"
    except ApiError as err:
        return "duplicate" if err.code == "order_exists" else err


def _import_refund(brand_id: str, row: object, now: datetime, tz: str) -> str | ApiError:
    try:
        _refund(brand_id, rules.refund(row, order_id=None, now=now), store_id=None, idem=None, tz=tz)
        return "accepted"
    except ApiError as err:
        return "duplicate" if err.code == "refund_exists" else err


def _summary(outcomes: list) -> dict:
    return {"accepted": outcomes.count("accepted"), "duplicates": outcomes.count("duplicate"),
            "rejected": [{"index": i, "code": o.code, "message": o.message}
                         for i, o in enumerate(outcomes) if isinstance(o, ApiError)]}


def import_orders(brand_id: str, body: dict) -> dict:
    """POST /admin/{brand}/order-imports: `{orders?: [...], refunds?: [...]}` (not both empty), each row
    recorded on its own (IMPORT_PARALLEL at a time), refunds after the orders so they may refund orders of
    the same call.
    200 `{accepted, duplicates, rejected: [{index, code, message}], refunds: {same}}`."""
    tz = tenancy.require_brand(brand_id).timezone
    rows, refunds = body.get("orders", []), body.get("refunds", [])
    if set(body) - {"orders", "refunds"}:
        raise BadRequest("an import is {orders?: [...], refunds?: [...]}", code="unknown_field")
    if not isinstance(rows, list) or len(rows) > rules.MAX_IMPORT_ORDERS:
        raise BadRequest(f"orders must be a list of at most {rules.MAX_IMPORT_ORDERS} orders", code="invalid_orders")
    if not isinstance(refunds, list) or len(refunds) > rules.MAX_IMPORT_REFUNDS:
        raise BadRequest(f"refunds must be a list of at most {rules.MAX_IMPORT_REFUNDS} refunds",
                         code="invalid_refunds")
    if not rows and not refunds:
        # an ERP sends a day's refunds on their own, after the orders it sent before
        raise BadRequest("an import holds at least one order or refund", code="invalid_orders")
    now = _now()
    outcomes = _in_groups(rows, ("member_id", "unionid", "openid"), lambda row: _import_one(brand_id, row, now, tz))
    refund_outcomes = _in_groups(refunds, ("order_id",), lambda row: _import_refund(brand_id, row, now, tz))
    return {**_summary(outcomes), "refunds": _summary(refund_outcomes)}


def _in_groups(rows: list, keys: tuple[str, ...], handle) -> list:
    """`handle(row)` for every row, IMPORT_PARALLEL groups at a time; rows naming the same member (the
    same order, for refunds) form one group, handled in turn, so an import never races itself for a
    member's order number or an order's refunded total. Outcomes come back in the rows' order."""
    groups: dict[object, list[int]] = {}
    for index, row in enumerate(rows):
        named = [(k, row[k]) for k in keys if isinstance(row, dict) and isinstance(row.get(k), str)]
        groups.setdefault(named[0] if named else index, []).append(index)
    outcomes: list = [None] * len(rows)

    def run(indexes: list[int]) -> None:
        for index in indexes:
            outcomes[index] = handle(rows[index])
    with ThreadPoolExecutor(IMPORT_PARALLEL) as pool:
        list(pool.map(run, groups.values()))
    return outcomes
