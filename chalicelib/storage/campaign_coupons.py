"""Campaign coupons on the delivery ledger (issue 10): what a delivered recipient's coupon writes, and
what a delivery group's record adds for the coupons it holds.

Per recipient, a template with a limit of 1 (domain.coupons.limited_by_code): the coupon alone, one
conditional PutItem under the member's limit code of the template, naming the run (`issued_by`), so
a retry finds its own coupon and anything else there is the member's limit; every issue path writes
that code, so a claim racing the campaign cannot give a second coupon. A higher limit: the member's
allowance (MemberClaims, one conditional UpdateItem that also names the run, so a retried count is
refused) and the coupon (one conditional PutItem; its code derived from campaign, run and member,
so a retry writes the same coupon or finds it written).
Per group, in the group's own record transaction (storage.ledger.record: conditional on the group
part not being recorded yet, so a retried group counts nothing twice): the template's issued count
(its stock shard's counter), the scoreboard's `coupons_issued` by day/store/guide/channel and the
template's rows, and ONE outbox item that names the group's outcome item; the publisher
(services.outbox) reads that item and puts one `coupon.issued` event per coupon on the bus.
"""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib.domain import coupons as rules
from chalicelib.domain import scoreboard as score
from chalicelib.storage import scoreboard as counters
from chalicelib.storage.coupons import CodeTaken, claims_key, get_coupon, stock_key
from chalicelib.storage.members import member_key, outbox_item
from chalicelib.storage.models import Coupon, Item, Member, MemberClaims, StockShard
from chalicelib.storage.tx import Tx, refused

EVENT_TOPIC = "events"      # an outbox item standing for one event per coupon of a delivery group


def member_and_claims(brand_id: str, member_id: str, template_id: str) -> tuple[Member | None, int]:
    """The member (its first touch keys the coupon's counters) and the member's claims counter of
    the template, in one BatchGetItem (eventually consistent: the counter of a template limited by
    code only holds claims counted before codes carried the limit, long settled)."""
    keys = [(member_key(brand_id, member_id), "MEMBER"), claims_key(brand_id, member_id, template_id)]
    found = {(i.pk, i.sk): i for i in Item.batch_get(keys)}
    claims = found.get(keys[1])
    return found.get(keys[0]), int(claims.claimed or 0) if isinstance(claims, MemberClaims) else 0


def take_allowance(brand_id: str, member_id: str, template_id: str, limit: int, issue: str) -> bool:
    """One unit of the member's per-template limit for issue `issue` (a campaign run): True if taken
    now or by an earlier try of the same issue, False at the limit. A container dying after this
    and before the coupon leaves the member one unit short (never one coupon over)."""
    item = MemberClaims(*claims_key(brand_id, member_id, template_id))
    try:
        item.update(actions=[MemberClaims.claimed.add(1), MemberClaims.kind.set(MemberClaims),
                             MemberClaims.last_issue.set(issue)],
                    condition=((MemberClaims.claimed.does_not_exist() | (MemberClaims.claimed < limit))
                               & (MemberClaims.last_issue.does_not_exist() | (MemberClaims.last_issue != issue))))
        return True
    except UpdateError as err:
        if not refused(err):
            raise
    try:
        current = MemberClaims.get(*claims_key(brand_id, member_id, template_id), consistent_read=True)
    except DoesNotExist:
        return False
    return current.last_issue == issue


def _put_or_find(coupon: Coupon) -> Coupon | None:
    """Write the coupon unless its code is taken: the coupon written, or the one found under its code
    (the same member and template, as it is now: it may be redeemed already; anything else there is a
    collision, CodeTaken), or None when the put was refused and nothing is there any more (the TTL
    deleted it in between)."""
    try:
        coupon.save(condition=Coupon.pk.does_not_exist())
        return coupon
    except PutError as err:
        if not refused(err):
            raise
    found = get_coupon(coupon.brand_id, coupon.code)
    if found is not None and (found.member_id != coupon.member_id or found.template_id != coupon.template_id):
        raise CodeTaken()
    return found


def put(coupon: Coupon) -> Coupon:
    """Write the coupon unless it exists. Its code is derived from what it is issued for, so a
    coupon found under that code is this one written by an earlier try (the same member and
    template), returned as it is now (it may be redeemed already); anything else is a collision."""
    found = _put_or_find(coupon)
    if found is None:
        raise CodeTaken()
    return found


def claimed(brand_id: str, member_id: str, template_id: str) -> int:
    """The member's claims counter of the template (eventually consistent, as member_and_claims)."""
    try:
        return int(MemberClaims.get(*claims_key(brand_id, member_id, template_id)).claimed or 0)
    except DoesNotExist:
        return 0


def put_limited(coupon: Coupon) -> Coupon | None:
    """Write the member's coupon under its template's limit code (domain.coupons.limited_by_code)
    unless one is there: the coupon written now or by an earlier try of the same issue
    (`issued_by`), or None when the member holds the template's coupon from anything else (another
    run, a claim, a welcome: the limit), or held one the TTL deleted since (the limit held then)."""
    found = _put_or_find(coupon)
    if found is None or found is coupon:
        return found
    return found if found.issued_by == coupon.issued_by else None


def evidence(brand_id: str, code: str, member_id: str, template_id: str, issued_by: str | None = None) -> Coupon | None:
    """The coupon a campaign run derived for the member, if it was written (consistent read); with
    `issued_by`, only if that run wrote it (a template's limit code is per member, not per run)."""
    found = get_coupon(brand_id, code)
    if found is None or found.member_id != member_id or found.template_id != template_id:
        return None
    if issued_by is not None and found.issued_by != issued_by:
        return None
    return found


def add_issued(tx: Tx, brand_id: str, t: rules.Template, issued: list[tuple[str, str, score.Keys, str]],
               outcome_key: tuple[str, str], *, valid_until: str, campaign_id: str, run_id: str, shard: int,
               now: datetime) -> None:
    """Count `issued` coupons ((member, code, first-touch keys, issue day) each) in `tx`: the template's
    issued count, the scoreboard, and one outbox item naming the outcome item that lists them."""
    tx.update("coupon-stock", StockShard(*stock_key(brand_id, t.template_id, 0)),
              [StockShard.issued.add(len(issued)), StockShard.kind.set(StockShard)])
    deltas = score.merge([d for _member, _code, keys, day in issued
                          for d in score.coupon_issued(day=day, member=keys, template_id=t.template_id)])
    counters.add(tx, brand_id, deltas, shard)
    tx.save("coupon-events", outbox_item(EVENT_TOPIC, "coupon.issued", brand_id, {
        "brand_id": brand_id, "template_id": t.template_id, "source": "campaign", "valid_until": valid_until,
        "campaign_id": campaign_id, "run_id": run_id, "outcomes": list(outcome_key)}, now))


COUNTER_FIXED_ITEMS = 2     # add_issued's template stock counter and outbox item, besides the scoreboard's


def counter_keys(t: rules.Template, member: score.Keys, day: str) -> set[tuple[str, str, str | None]]:
    """The scoreboard items one coupon of `t` issued on `day` to a member of first touch `member`
    adds to (add_issued writes each once per transaction, merged: a coupon's count is never zero),
    so a transaction's items are COUNTER_FIXED_ITEMS + the size of its coupons' union."""
    return {(dim, d, key) for dim, d, key, _m in score.coupon_issued(day=day, member=member, template_id=t.template_id)}
