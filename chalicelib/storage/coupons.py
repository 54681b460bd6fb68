"""Coupon storage. Every state change is one TransactWriteItems whose conditions carry the rule:
one stock shard under its quota, the member under their limit, the coupon still `issued`, the
idempotency key unused. Counters (issued, redeemed, reversed, discount) are in the same transaction, so a
retried request refused by its condition cannot count twice; they are sharded like the stock, so
no item becomes a hot key in a flash sale.

Stock shards are counters created by their first claim (a template is one item, whatever its shard
count: a transaction holds at most 100), each in a partition of its own, as are a flash sale's
scoreboard counters (storage.scoreboard): a partition takes ~1,000 writes/s, and DynamoDB splits a hot item collection only after
minutes of heat, too late for a sale that peaks in its first second. A template's issued count is the
sum of its shards', read with the template; no single item counts every claim.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.domain import coupons as rules
from chalicelib.errors import Conflict
from chalicelib.ids import new_id
from chalicelib.storage.members import outbox_item
from chalicelib.storage.models import (Coupon, CouponTemplate, IdempotencyRecord, IssueKey, Item,
                                       MemberClaims, Redemption, StockShard, TemplateTotals, UnknownCodeGuard)
from chalicelib.storage.tx import Conflicted, Tx

IDEMPOTENCY_RETENTION = timedelta(days=7)
GUARD_WINDOW = 300                     # seconds
TOTAL_SHARDS = 8                       # redemption counters per template (tills are far below 1,000/s each)


class OutOfStock(Exception):
    """This shard is empty (the template may still have stock elsewhere)."""


class LimitReached(Exception):
    pass


class AlreadyIssued(Exception):
    """The issue key was used before: the coupon exists already."""


class CodeTaken(Exception):
    """A freshly drawn code collided with an existing one (2^-65 per pair): draw again."""


class ShardBusy(Exception):
    """DynamoDB cancelled the claim because a concurrent transaction held the stock shard (in AWS, a
    hot shard's transactions conflict long before its write throughput runs out): another shard may
    take it. Nothing was written."""


class NotRedeemable(Exception):
    """The coupon is not in the state the redemption/reversal needs (raced by another till)."""


class KeyUsed(Exception):
    """The idempotency key was used by a request that committed first."""


class AlreadyReversed(Exception):
    pass


def tpl_pk(brand_id: str, template_id: str) -> str:
    return f"B#{brand_id}#TPL#{template_id}"


def templates_pk(brand_id: str) -> str:
    """gsi1 partition of a brand's templates (GET /admin/{brand}/coupon-templates)."""
    return f"B#{brand_id}#TEMPLATES"


def coupon_pk(brand_id: str, code: str) -> str:
    return f"B#{brand_id}#C#{code}"


def stock_key(brand_id: str, template_id: str, shard: int) -> tuple[str, str]:
    return f"{tpl_pk(brand_id, template_id)}#STOCK#{shard:02d}", "STOCK"


def wallet_pk(brand_id: str, member_id: str) -> str:
    return f"B#{brand_id}#WALLET#{member_id}"


def idem_pk(brand_id: str, store_id: str, key: str) -> str:
    return f"B#{brand_id}#IDEM#{store_id}#{key}"


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _kind(model_cls):
    """Counters are created by their first UpdateItem; this gives them their `kind` like any put."""
    return model_cls.kind.set(model_cls)


# ---- templates -----------------------------------------------------------------------------

def create_template(brand_id: str, t: rules.Template, now: datetime) -> CouponTemplate:
    item = CouponTemplate(
        tpl_pk(brand_id, t.template_id), "TEMPLATE", brand_id=brand_id, template_id=t.template_id, name=t.name,
        coupon_kind=t.kind, value=t.value, min_spend_cents=t.min_spend_cents,
        valid_from=iso(t.valid_from) if t.valid_from else None, valid_until=iso(t.valid_until) if t.valid_until else None,
        valid_days_after_claim=t.valid_days_after_claim, total_stock=t.total_stock,
        per_member_limit=t.per_member_limit, store_ids=list(t.store_ids) if t.store_ids is not None else None,
        claim_starts_at=iso(t.claim_starts_at) if t.claim_starts_at else None,
        claim_ends_at=iso(t.claim_ends_at) if t.claim_ends_at else None, flash_sale=t.flash_sale, shards=t.shards,
        reversal_voids=t.reversal_voids, created_at=iso(now), limit_code=True if not t.claims_counted else None,
        gsi1pk=templates_pk(brand_id), gsi1sk=f"{iso(now)}#{t.template_id}")    # the brand's list, newest first
    try:
        item.save(condition=CouponTemplate.pk.does_not_exist())
    except PutError as err:
        if err.cause_response_code == "ConditionalCheckFailedException":
            raise Conflict(f"coupon template {t.template_id} already exists", code="template_exists") from None
        raise
    return item


def to_rules(item: CouponTemplate) -> rules.Template:
    return rules.Template(
        template_id=item.template_id, name=item.name, kind=item.coupon_kind, value=int(item.value),
        min_spend_cents=int(item.min_spend_cents), valid_from=parse(item.valid_from),
        valid_until=parse(item.valid_until),
        valid_days_after_claim=int(item.valid_days_after_claim) if item.valid_days_after_claim else None,
        total_stock=int(item.total_stock) if item.total_stock is not None else None,
        per_member_limit=int(item.per_member_limit),
        store_ids=tuple(item.store_ids) if item.store_ids is not None else None,
        claim_starts_at=parse(item.claim_starts_at), claim_ends_at=parse(item.claim_ends_at),
        flash_sale=bool(item.flash_sale), shards=int(item.shards), reversal_voids=bool(item.reversal_voids),
        claims_counted=not item.limit_code)


def get_template(brand_id: str, template_id: str) -> rules.Template | None:
    try:
        return to_rules(CouponTemplate.get(tpl_pk(brand_id, template_id), "TEMPLATE"))
    except DoesNotExist:
        return None


def template_with_counts(brand_id: str, template_id: str) -> tuple[CouponTemplate, dict] | None:
    """The template and its live counts: one Query of the template's partition (template, redemption
    totals) and the stock shards' issued counts (BatchGetItem, 100 keys a call)."""
    items = list(Item.query(tpl_pk(brand_id, template_id), consistent_read=True))
    template = next((i for i in items if isinstance(i, CouponTemplate)), None)
    if template is None:
        return None
    totals = [i for i in items if isinstance(i, TemplateTotals)]
    issued = sum(shard_issued(brand_id, template_id, int(template.shards), consistent=True).values())
    redeemed = sum(int(t.redeemed or 0) for t in totals)
    reversed_ = sum(int(t.reversed or 0) for t in totals)
    remaining = None if template.total_stock is None else int(template.total_stock) - issued
    return template, {"issued": issued, "redeemed": redeemed - reversed_, "reversed": reversed_,
                      "remaining": remaining, "discount_cents": sum(int(t.discount_cents or 0) for t in totals)}


def template_exists_check(brand_id: str, template_id: str):
    """For a channel code's transaction: the welcome template must exist."""
    def add(tx: Tx) -> dict:
        tx.check("template", CouponTemplate, tpl_pk(brand_id, template_id), "TEMPLATE",
                 condition=CouponTemplate.pk.exists())
        from chalicelib.errors import NotFound
        return {"template": NotFound(f"no coupon template {template_id}", code="unknown_coupon_template")}
    return add


# ---- issuing -------------------------------------------------------------------------------

def shard_issued(brand_id: str, template_id: str, shards: int, *, consistent: bool = False) -> dict[int, int]:
    """Coupons issued from each stock shard (a shard no claim reached yet has none)."""
    keys = [stock_key(brand_id, template_id, n) for n in range(shards)]
    found = {item.pk: int(item.issued or 0) for item in StockShard.batch_get(keys, consistent_read=consistent)}
    return {n: found.get(key[0], 0) for n, key in enumerate(keys)}


def new_coupon(brand_id: str, t: rules.Template, *, member_id: str, code: str, now: datetime, source: str,
               retention_days: int, touch: dict | None = None, issued_by: str | None = None,
               event_id: str | None = None) -> Coupon:
    """A coupon item as issued: in the member's wallet (gsi1) until it expires, kept `retention_days`
    after (or for good when it is the member's limit: rules.kept_until)."""
    touch = touch or {}
    valid_from, valid_until = rules.validity(t, now)
    return Coupon(coupon_pk(brand_id, code), "COUPON", brand_id=brand_id, code=code, template_id=t.template_id,
                  member_id=member_id, state="issued", coupon_kind=t.kind, value=t.value,
                  min_spend_cents=t.min_spend_cents, store_ids=list(t.store_ids) if t.store_ids is not None else None,
                  name=t.name, valid_from=iso(valid_from), valid_until=iso(valid_until), claimed_at=iso(now),
                  source=source, gsi1pk=wallet_pk(brand_id, member_id), gsi1sk=f"{iso(valid_until)}#{code}",
                  expires_at=rules.kept_until(t, valid_until, retention_days),
                  touch_store_id=touch.get("store_id"), touch_guide_id=touch.get("guide_id"),
                  touch_scene=touch.get("scene"), issued_by=issued_by, event_id=event_id)


def issue(brand_id: str, t: rules.Template, *, member_id: str, shard: int, code: str, now: datetime,
          source: str, retention_days: int, issue_key: str | None = None, touch: dict | None = None,
          extend=None, limit_by_code: bool = False) -> Coupon:
    """Issue one coupon from one stock shard. Raises OutOfStock, LimitReached, AlreadyIssued, CodeTaken
    or ShardBusy. `touch`: the member's first touch (store_id, guide_id, scene) kept on the coupon;
    `extend(tx)` adds the scoreboard's counters to the same transaction.

    `limit_by_code` (domain.coupons.limited_by_code): `code` is the member's limit code, so the
    coupon's own put is the limit (a coupon there: LimitReached, or AlreadyIssued when it carries
    this `issue_key`); the member's claims counter is only checked (claims counted before codes
    carried the limit), not written."""
    # the coupon announces itself (its INSERT is its coupon.issued: services.outbox): no outbox item
    coupon = new_coupon(brand_id, t, member_id=member_id, code=code, now=now, source=source,
                        retention_days=retention_days, touch=touch,
                        issued_by=issue_key if limit_by_code else None, event_id=new_id("ev", 20))
    tx = Tx()
    shard_item = StockShard(*stock_key(brand_id, t.template_id, shard))
    if t.total_stock is None:
        tx.update("stock", shard_item, [StockShard.issued.add(1), _kind(StockShard)])
    else:
        quota = rules.shard_quota(t.total_stock, t.shards, shard)
        tx.update("stock", shard_item, [StockShard.issued.add(1), _kind(StockShard)],
                  condition=StockShard.issued.does_not_exist() | (StockShard.issued < quota))
    claims = MemberClaims(*claims_key(brand_id, member_id, t.template_id))
    under_limit = MemberClaims.claimed.does_not_exist() | (MemberClaims.claimed < t.per_member_limit)
    if limit_by_code:
        if t.claims_counted:       # a template older than limit codes: its old claims still count
            tx.check("limit", MemberClaims, claims.pk, claims.sk, condition=under_limit)
    else:
        tx.update("limit", claims, [MemberClaims.claimed.add(1), _kind(MemberClaims)], condition=under_limit)
    tx.save("coupon", coupon, condition=Coupon.pk.does_not_exist())
    if issue_key:
        tx.save("issue", IssueKey(f"B#{brand_id}#ISSUE#{issue_key}", "ISSUE", code=code),
                condition=IssueKey.pk.does_not_exist())
    if extend:
        extend(tx)
    try:
        tx.commit({"issue": AlreadyIssued(), "stock": OutOfStock(), "limit": LimitReached(), "coupon": CodeTaken()})
    except Conflicted:
        raise ShardBusy() from None
    except CodeTaken:
        if limit_by_code:
            raise _held(brand_id, code, issue_key) from None
        raise
    return coupon


def _held(brand_id: str, code: str, issue_key: str | None) -> Exception:
    """Why a limit code's put was refused: the member's coupon of the template is there already,
    written by this issue key before (AlreadyIssued: a retry) or by anything else (LimitReached)."""
    found = get_coupon(brand_id, code)
    if issue_key and found is not None and found.issued_by == issue_key:
        return AlreadyIssued()
    return LimitReached()


def claims_key(brand_id: str, member_id: str, template_id: str) -> tuple[str, str]:
    """The member's claims counter of a template (per_member_limit > 1; and the claims counted before
    a limit of 1 was carried by the coupon's code: domain.coupons.limited_by_code)."""
    return f"B#{brand_id}#CLAIMS#{member_id}#{template_id}", "CLAIMS"


def issued_for_key(brand_id: str, issue_key: str) -> str | None:
    try:
        return IssueKey.get(f"B#{brand_id}#ISSUE#{issue_key}", "ISSUE", consistent_read=True).code
    except DoesNotExist:
        return None


def wallet(brand_id: str, member_id: str, now: datetime) -> list[Coupon]:
    """The member's coupons that have not expired, soonest to expire first."""
    return [c for c in Coupon.gsi1.query(wallet_pk(brand_id, member_id), Coupon.gsi1sk > iso(now))
            if isinstance(c, Coupon)]


# ---- the till -----------------------------------------------------------------------------

def till_read(brand_id: str, store_id: str, code: str | None, idem_key: str, now: float):
    """One BatchGetItem: the coupon, the store's unknown-code guard, the idempotency record."""
    keys = [(idem_pk(brand_id, store_id, idem_key), "IDEM"), guard_key(brand_id, store_id, now)]
    if code:
        keys.append((coupon_pk(brand_id, code), "COUPON"))
    found = {(i.pk, i.sk): i for i in Item.batch_get(keys, consistent_read=True)}
    return (found.get((coupon_pk(brand_id, code), "COUPON")) if code else None,
            found.get(guard_key(brand_id, store_id, now)),
            found.get((idem_pk(brand_id, store_id, idem_key), "IDEM")))


def guard_key(brand_id: str, store_id: str, now: float) -> tuple[str, str]:
    return f"B#{brand_id}#GUARD#{store_id}", str(int(now // GUARD_WINDOW) * GUARD_WINDOW)


def count_unknown_code(brand_id: str, store_id: str, now: float) -> int:
    pk, sk = guard_key(brand_id, store_id, now)
    item = UnknownCodeGuard(pk, sk)
    item.update([UnknownCodeGuard.misses.add(1), _kind(UnknownCodeGuard),
                 UnknownCodeGuard.expires_at.set(datetime.fromtimestamp(now + 2 * GUARD_WINDOW, timezone.utc))])
    return int(item.misses)


def idempotency_record(brand_id: str, store_id: str, key: str) -> IdempotencyRecord | None:
    try:
        return IdempotencyRecord.get(idem_pk(brand_id, store_id, key), "IDEM", consistent_read=True)
    except DoesNotExist:
        return None


def redeem(brand_id: str, coupon: Coupon, *, store_id: str, till_id: str | None, order_id: str,
           order_amount_cents: int, discount_cents: int, redemption_id: str, idem_key: str, request_hash: str,
           response: dict, now: datetime, retention_days: int, extend=None, local_day: str | None = None) -> None:
    """Mark the coupon redeemed and remember the answer under the idempotency key, atomically.
    Raises KeyUsed (that key committed first) or NotRedeemable (another till won). With `local_day`
    (the store's day in the brand's time zone) the redemption is indexed for the till's day list."""
    valid_until = parse(coupon.valid_until)
    tx = Tx()
    tx.update("coupon", Coupon(coupon.pk, "COUPON"), [
        Coupon.state.set("redeemed"), Coupon.redemption_id.set(redemption_id), Coupon.redeemed_at.set(iso(now)),
        Coupon.redeemed_store_id.set(store_id)], condition=Coupon.state == "issued")
    tx.save("key", IdempotencyRecord(idem_pk(brand_id, store_id, idem_key), "IDEM", request_hash=request_hash,
                                     status=201, response=json.dumps(response, separators=(",", ":")),
                                     expires_at=now + IDEMPOTENCY_RETENTION),
            condition=IdempotencyRecord.pk.does_not_exist())
    tx.save("redemption", Redemption(
        f"B#{brand_id}#RDM#{redemption_id}", "RDM", brand_id=brand_id, redemption_id=redemption_id, code=coupon.code,
        template_id=coupon.template_id, store_id=store_id, till_id=till_id, order_id=order_id,
        order_amount_cents=order_amount_cents, discount_cents=discount_cents, created_at=iso(now),
        expires_at=valid_until + timedelta(days=retention_days),
        **(till_day_index(brand_id, store_id, local_day, now, redemption_id) if local_day else {})),
        condition=Redemption.pk.does_not_exist())
    shard = random.randrange(TOTAL_SHARDS)
    tx.update("totals", TemplateTotals(tpl_pk(brand_id, coupon.template_id), f"TOTAL#{shard:02d}"),
              [TemplateTotals.redeemed.add(1), TemplateTotals.discount_cents.add(discount_cents), _kind(TemplateTotals)])
    tx.save("outbox", outbox_item("event", "coupon.redeemed", brand_id, {
        "brand_id": brand_id, "member_id": coupon.member_id, "code": coupon.code, "template_id": coupon.template_id,
        "store_id": store_id, "till_id": till_id, "order_id": order_id, "order_amount_cents": order_amount_cents,
        "discount_cents": discount_cents, "redemption_id": redemption_id}, now))
    if extend:
        extend(tx)
    tx.commit({"key": KeyUsed(), "coupon": NotRedeemable()})


def till_day_pk(brand_id: str, store_id: str, local_day: str) -> str:
    return f"B#{brand_id}#S#{store_id}#RDMDAY#{local_day}"


def till_day_index(brand_id: str, store_id: str, local_day: str, now: datetime, redemption_id: str) -> dict:
    """gsi1 keys of a redemption in its store's day (the till's list: one Query, newest first)."""
    return {"gsi1pk": till_day_pk(brand_id, store_id, local_day), "gsi1sk": f"{iso(now)}#{redemption_id}"}


def get_redemption(brand_id: str, redemption_id: str) -> Redemption | None:
    try:
        return Redemption.get(f"B#{brand_id}#RDM#{redemption_id}", "RDM", consistent_read=True)
    except DoesNotExist:
        return None


def reverse(brand_id: str, redemption: Redemption, *, member_id: str, void: bool, now: datetime,
            extend=None) -> None:
    """Undo a redemption: the coupon is usable again (or void). Raises AlreadyReversed."""
    tx = Tx()
    tx.update("redemption", Redemption(redemption.pk, "RDM"), [Redemption.reversed_at.set(iso(now))],
              condition=Redemption.reversed_at.does_not_exist())
    tx.update("coupon", Coupon(coupon_pk(brand_id, redemption.code), "COUPON"), [
        Coupon.state.set("void" if void else "issued"), Coupon.redemption_id.remove(), Coupon.redeemed_at.remove(),
        Coupon.redeemed_store_id.remove()], condition=Coupon.redemption_id == redemption.redemption_id)
    shard = random.randrange(TOTAL_SHARDS)
    tx.update("totals", TemplateTotals(tpl_pk(brand_id, redemption.template_id), f"TOTAL#{shard:02d}"),
              [TemplateTotals.reversed.add(1), TemplateTotals.discount_cents.add(-int(redemption.discount_cents)),
               _kind(TemplateTotals)])
    tx.save("outbox", outbox_item("event", "coupon.reversed", brand_id, {
        "brand_id": brand_id, "member_id": member_id, "code": redemption.code, "template_id": redemption.template_id,
        "store_id": redemption.store_id, "redemption_id": redemption.redemption_id, "voided": void}, now))
    if extend:
        extend(tx)
    tx.commit({"redemption": AlreadyReversed(), "coupon": AlreadyReversed()})


def get_coupon(brand_id: str, code: str) -> Coupon | None:
    try:
        return Coupon.get(coupon_pk(brand_id, code), "COUPON", consistent_read=True)
    except DoesNotExist:
        return None
