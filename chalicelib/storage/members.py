"""Member storage: one BatchGetItem to learn the context of a touch, one TransactWriteItems to apply it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.domain.members import (MEMBER_FIELD, ChannelCode, GuideRef, Plan, audience_key, settled_member)
from chalicelib.domain import scoreboard as score
from chalicelib.ids import new_id
from chalicelib.storage import scoreboard
from chalicelib.storage.tx import Tx
from chalicelib.storage.models import (Channel, GuideByWecomUser, Identity, Inbound, Item, Member, Message,
                                       Outbox, Touch)

INBOUND_RETENTION = timedelta(days=2)   # WeChat retries within seconds; two days covers any redrive
OUTBOX_RETENTION = timedelta(days=1)


class Duplicate(Exception):
    """This inbound event was handled before: the effect is already committed."""


class IdentityRace(Exception):
    """Another touch linked one of these identities first; resolve again and retry."""


def identity_key(brand_id: str, ns: str, value: str) -> str:
    return f"B#{brand_id}#ID#{ns}:{value}"


def member_key(brand_id: str, member_id: str) -> str:
    return f"B#{brand_id}#M#{member_id}"


def inbound_key(brand_id: str, key: str) -> str:
    return f"B#{brand_id}#IN#{key}"


@dataclass
class TouchContext:
    channel: ChannelCode | None
    guide: GuideRef | None
    found: dict[tuple[str, str], str]
    timezone: str | None = None         # the brand's, read in the same BatchGetItem (scoreboard days)


def channel_from_item(item: Channel) -> ChannelCode:
    return ChannelCode(scene=item.scene, store_id=item.store_id, guide_id=item.guide_id, source=item.source,
                       tags=tuple(item.tags or ()), welcome_coupon_template_id=item.welcome_coupon_template_id,
                       welcome_message=item.welcome_message)


def load_touch_context(brand_id: str, *, scene: str | None, identities: list[tuple[str, str]],
                       wecom_user_id: str | None = None) -> TouchContext:
    """Channel code, guide fallback and identity links in a single BatchGetItem."""
    keys = [(identity_key(brand_id, ns, value), "ID") for ns, value in identities]
    keys.append((f"B#{brand_id}", "BRAND"))
    if scene:
        keys.append((f"B#{brand_id}", f"CHANNEL#{scene}"))
    if wecom_user_id:
        keys.append((f"B#{brand_id}", f"WECOMUSER#{wecom_user_id}"))
    by_key = {(item.pk, item.sk): item for item in Item.batch_get(keys)}
    found = {}
    for ns, value in identities:
        item = by_key.get((identity_key(brand_id, ns, value), "ID"))
        if item is not None:
            found[(ns, value)] = item.member_id
    channel = by_key.get((f"B#{brand_id}", f"CHANNEL#{scene}")) if scene else None
    guide = by_key.get((f"B#{brand_id}", f"WECOMUSER#{wecom_user_id}")) if wecom_user_id else None
    brand = by_key.get((f"B#{brand_id}", "BRAND"))
    return TouchContext(channel=channel_from_item(channel) if channel else None,
                        guide=GuideRef(guide.guide_id, guide.store_id) if guide else None,
                        found=found, timezone=brand.timezone if brand is not None else None)


def settled_member_of(brand_id: str, identities: list[tuple[str, str]]) -> str | None:
    """One BatchGetItem of the identity links: the member they all resolve to for good, or None
    while one is not linked (domain.members.settled_member)."""
    keys = [(identity_key(brand_id, ns, value), "ID") for ns, value in identities]
    linked = {item.pk: item.member_id for item in Item.batch_get(keys) if isinstance(item, Identity)}
    found = {(ns, value): linked[identity_key(brand_id, ns, value)] for ns, value in identities
             if identity_key(brand_id, ns, value) in linked}
    return settled_member(found, identities)


def outbox_item(topic: str, name: str, brand_id: str, detail: dict, now: datetime) -> Outbox:
    event_id = new_id("ev", 20)
    return Outbox(f"OUT#{event_id}", "OUT", topic=topic, name=name, brand_id=brand_id,
                  detail=json.dumps({**detail, "event_id": event_id}, ensure_ascii=False, separators=(",", ":")),
                  created_at=now.isoformat(), expires_at=now + OUTBOX_RETENTION)


def _touch_attr(plan: Plan) -> Touch:
    return Touch(**plan.touch.as_dict())


def _inbound(tx: Tx, brand_id: str, key: str | None, event: str, now: datetime) -> None:
    if key:
        tx.save("inbound", Inbound(inbound_key(brand_id, key), "IN", event=event, expires_at=now + INBOUND_RETENTION),
                condition=Inbound.pk.does_not_exist())


_TOUCH_REFUSALS = {"inbound": Duplicate(), "member": IdentityRace(), "identity": IdentityRace()}


def commit_touch(brand_id: str, plan: Plan, *, inbound: str | None, event: str, now: datetime,
                 timezone_name: str | None = None, extend=None) -> None:
    """Apply a touch plan atomically. Raises Duplicate (inbound marker exists) or IdentityRace.
    A new member adds to the scoreboard's `new_members` of their join day (in `timezone_name`, the
    brand's) and first touch, in the same transaction: a retried callback that creates nobody counts nobody."""
    tx = Tx()
    _inbound(tx, brand_id, inbound, event, now)
    if plan.create:
        gpk, gsk = audience_key(brand_id, plan.member_id, plan.touch.at)
        member = Member(member_key(brand_id, plan.member_id), "MEMBER", brand_id=brand_id,
                        member_id=plan.member_id, joined_at=plan.touch.at, first_touch=_touch_attr(plan),
                        last_touch=_touch_attr(plan), tags=set(plan.tags) or None, touches=1,
                        oa_subscribed=plan.subscribed,
                        wecom_guides={plan.wecom_guide} if plan.wecom_guide else None,
                        gsi1pk=gpk, gsi1sk=gsk, **plan.fields)
        tx.save("member", member, condition=Member.pk.does_not_exist())
        if timezone_name:
            first = plan.touch.as_dict()
            scoreboard.add(tx, brand_id, score.joined(score.cohort(plan.touch.at, first, timezone_name)),
                           scoreboard.shard_of(plan.member_id))
    else:
        actions = [Member.last_touch.set(_touch_attr(plan)), Member.touches.add(1)]
        if plan.tags:
            actions.append(Member.tags.add(set(plan.tags)))
        for name, value in plan.fields.items():
            attr = getattr(Member, name)
            actions.append(attr.set(attr | value))      # if_not_exists: the first link wins
        if plan.subscribed is not None:
            actions.append(Member.oa_subscribed.set(plan.subscribed))
        if plan.wecom_guide:
            actions.append(Member.wecom_guides.add({plan.wecom_guide}))
        tx.update("member", Member(member_key(brand_id, plan.member_id), "MEMBER"), actions,
                  condition=Member.pk.exists())
    if plan.tags:
        # the tag index (storage.audience) changes in the same transaction as the member's tags
        from chalicelib.storage.audience import tag_writes
        tag_writes(tx, brand_id, plan.member_id, set(plan.tags), set())
    for ns, value in plan.link:
        tx.save("identity", Identity(identity_key(brand_id, ns, value), "ID", member_id=plan.member_id,
                                     created_at=now.isoformat()),
                condition=Identity.pk.does_not_exist())
    for name, detail in plan.events:
        tx.save("outbox", outbox_item("event", name, brand_id, detail, now))
    for name, detail in plan.tasks:
        tx.save("outbox", outbox_item("task", name, brand_id, detail, now))
    # `extend(tx)` adds more writes to the same transaction (a guide's WeCom contact: storage.guides)
    # and returns their refusals, checked after the touch's own
    tx.commit({**_TOUCH_REFUSALS, **(extend(tx) if extend else {})})


def update_member(brand_id: str, member_id: str, actions: list, *, inbound: str | None, event: str,
                  now: datetime, extend=None) -> None:
    """Apply `actions` to an existing member, once per inbound event (follow/unfollow, guide removal).
    The member itself is never deleted: a shopper who unfollows is still the brand's member."""
    tx = Tx()
    _inbound(tx, brand_id, inbound, event, now)
    tx.update("member", Member(member_key(brand_id, member_id), "MEMBER"), actions, condition=Member.pk.exists())
    tx.commit({**_TOUCH_REFUSALS, **(extend(tx) if extend else {})})


def record_inbound(brand_id: str, key: str, event: str, now: datetime) -> bool:
    """Mark an event with no other effect as seen; False if it was seen before."""
    try:
        Inbound(inbound_key(brand_id, key), "IN", event=event, expires_at=now + INBOUND_RETENTION).save(
            condition=Inbound.pk.does_not_exist())
        return True
    except PutError as err:
        if err.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def forget_inbound(brand_id: str, key: str) -> None:
    """Release a marker so the work it claimed can be retried."""
    Inbound(inbound_key(brand_id, key), "IN").delete()


def save_message(brand_id: str, *, openid: str, via: str, msg_type: str, content: str | None, msg_id: str,
                 create_time: int, received_at: datetime) -> bool:
    """Store a shopper's message once (keyed by WeChat's CreateTime and MsgId, which a retry repeats);
    False if it was stored before."""
    item = Message(f"B#{brand_id}#MSG#{openid}", f"{create_time:010d}#{msg_id}", brand_id=brand_id,
                   openid=openid, via=via, msg_type=msg_type, content=content, received_at=received_at.isoformat())
    try:
        item.save(condition=Message.pk.does_not_exist())
        return True
    except PutError as err:
        if err.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def find_member_id(brand_id: str, ns: str, value: str) -> str | None:
    try:
        return Identity.get(identity_key(brand_id, ns, value), "ID").member_id
    except DoesNotExist:
        return None


def get_member(brand_id: str, member_id: str) -> Member | None:
    try:
        return Member.get(member_key(brand_id, member_id), "MEMBER")
    except DoesNotExist:
        return None


def _touch_view(touch: Touch) -> dict:
    return {name: getattr(touch, name) for name in ("store_id", "guide_id", "scene", "source", "via", "at")}


def member_view(member: Member) -> dict:
    return {
        "member_id": member.member_id,
        "brand_id": member.brand_id,
        "joined_at": member.joined_at,
        "unionid": member.unionid,
        "oa_openid": member.oa_openid,
        "mp_openid": member.mp_openid,
        "external_userid": member.external_userid,
        "oa_subscribed": member.oa_subscribed,
        "wecom_guides": sorted(member.wecom_guides or ()),
        "first_touch": _touch_view(member.first_touch),
        "last_touch": _touch_view(member.last_touch),
        "touches": int(member.touches or 0),
        "tags": sorted(member.tags or ()),
        # order totals (storage.orders); gmv_cents is net of refunds
        "orders": int(member.orders or 0),
        "gmv_cents": int(member.gmv_cents or 0),
        "refunded_cents": int(member.refunded_cents or 0),
        "first_order_at": member.first_order_at,
        "last_order_at": member.last_order_at,
    }


def audience_desc(brand_id: str, shard: int, start_after: str | None, low: str, high: str,
                  limit: int) -> tuple[list[tuple[str, Member]], bool]:
    """Up to `limit` members of one audience shard with low <= sort key <= high, newest first, below
    `start_after` (a sort key domain.member_list validated: `<joined_at>#<member_id>`). One Query.
    Returns ((sort key, member) pairs, whether more may follow)."""
    pk = f"B#{brand_id}#AUD#{shard:02d}"
    start = None
    if start_after is not None:
        member_id = start_after.split("#", 1)[1]
        start = {"pk": {"S": member_key(brand_id, member_id)}, "sk": {"S": "MEMBER"},
                 "gsi1pk": {"S": pk}, "gsi1sk": {"S": start_after}}
    results = Member.gsi1.query(pk, Member.gsi1sk.between(low, high), scan_index_forward=False, limit=limit,
                                page_size=limit, last_evaluated_key=start)
    page = [(m.gsi1sk, m) for m in results if isinstance(m, Member)]
    return page, results.last_evaluated_key is not None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


__all__ = ["Duplicate", "IdentityRace", "TouchContext", "load_touch_context", "commit_touch", "update_member",
           "record_inbound", "save_message", "find_member_id", "get_member", "member_view", "MEMBER_FIELD"]
