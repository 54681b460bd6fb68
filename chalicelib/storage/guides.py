"""A guide's WeCom contacts, their counters, and the reads of the guide's workbench.

Contacts: one GuideContact item per (guide, external_userid), written in the same transaction as the
add/del_external_contact callback's other effects (storage.members). Its condition is the guard that
makes the counters exact: an add moves them only when the customer was not already a contact, a
removal only when they were, so WeChat's retries, a redrive or an add WeCom repeats count nothing twice.

Counters are scoreboard items (models.ScoreCounter, keys as storage.scoreboard.counter_key):
- `guide-contacts`: contacts_added, lost_contacts on the brand-local day, keyed by guide;
- `guide-contacts-now`: contacts (current), day `all`, keyed by guide;
- `guide-tasks`: tasks_assigned, tasks_executed on a head-office task's send day (storage.guide_tasks).
The order and member figures are the scoreboard's own `guide` dimension.

A guide's own figures for a range are read with BatchGetItem of exactly their keys (days x shards),
never a Query over every guide's counters; the leaderboard, which wants every guide, Queries the range.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.storage import scoreboard
from chalicelib.storage.models import Guide, GuideByWecomUser, GuideContact, Member, ScoreCounter, WecomTag
from chalicelib.storage.tx import Tx

CONTACTS_BY_DAY = "guide-contacts"
CONTACTS_NOW = "guide-contacts-now"
TASKS_BY_DAY = "guide-tasks"
NOW_DAY = "all"
GUIDE_METRICS = ("new_members", "converted_members", "orders", "gmv_cents", "coupons_redeemed")
CONTACT_METRICS = ("contacts_added", "lost_contacts")
TASK_METRICS = ("tasks_assigned", "tasks_executed")
ALL_METRICS = GUIDE_METRICS + CONTACT_METRICS + TASK_METRICS + ("contacts",)


class ContactUnchanged(Exception):
    """The contact already was (add) or already was not (removal) on the guide's list: nothing to count."""


def contact_key(brand_id: str, guide_id: str, external_userid: str) -> tuple[str, str]:
    return f"B#{brand_id}#GC#{guide_id}", external_userid


def guide_by_wecom_user(brand_id: str, wecom_user_id: str) -> GuideByWecomUser | None:
    try:
        return GuideByWecomUser.get(f"B#{brand_id}", f"WECOMUSER#{wecom_user_id}")
    except DoesNotExist:
        return None


def get_guide(brand_id: str, guide_id: str) -> Guide | None:
    try:
        return Guide.get(f"B#{brand_id}", f"GUIDE#{guide_id}")
    except DoesNotExist:
        return None


def _contact_change(tx: Tx, brand_id: str, guide_id: str, external_userid: str, member_id: str | None,
                    day: str, now: datetime, *, added: bool) -> dict:
    pk, sk = contact_key(brand_id, guide_id, external_userid)
    item = GuideContact(pk, sk, state="contact" if added else "removed", member_id=member_id,
                        changed_at=now.isoformat())
    if added:
        condition = GuideContact.pk.does_not_exist() | (GuideContact.state == "removed")
    else:
        condition = GuideContact.state == "contact"
    tx.save("contact", item, condition=condition)
    shard = scoreboard.shard_of(external_userid)
    scoreboard.add(tx, brand_id, [
        (CONTACTS_BY_DAY, day, guide_id, {"contacts_added" if added else "lost_contacts": 1}),
        (CONTACTS_NOW, NOW_DAY, guide_id, {"contacts": 1 if added else -1})], shard)
    return {"contact": ContactUnchanged()}


def contact_added(brand_id: str, guide_id: str, external_userid: str, member_id: str, day: str, now: datetime):
    """The `extend` hook of storage.members.commit_touch for a WeCom add of this guide."""
    return lambda tx: _contact_change(tx, brand_id, guide_id, external_userid, member_id, day, now, added=True)


def contact_removed(brand_id: str, guide_id: str, external_userid: str, member_id: str, day: str, now: datetime):
    """The `extend` hook of storage.members.update_member for a WeCom removal (either side)."""
    return lambda tx: _contact_change(tx, brand_id, guide_id, external_userid, member_id, day, now, added=False)


def contacts_of(brand_id: str, guide_id: str):
    """(external_userid, member_id) of the guide's current contacts, in pages of the Query."""
    pk, _ = contact_key(brand_id, guide_id, "")
    for item in GuideContact.query(pk, filter_condition=GuideContact.state == "contact"):
        yield item.sk, item.member_id


# ---- counters ----------------------------------------------------------------------------------

def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _metrics(item: ScoreCounter) -> dict[str, int]:
    return {name: int(getattr(item, name)) for name in ALL_METRICS if getattr(item, name, None) is not None}


def guide_figures(brand_id: str, guide_id: str, first: date, last: date) -> dict[str, int]:
    """One guide's figures summed over [first, last] and their current contacts: one BatchGetItem of
    their own counter keys (chunked by 100)."""
    keys = []
    for day in _days(first, last):
        for shard in range(scoreboard.SHARDS):
            for dimension in ("guide", CONTACTS_BY_DAY, TASKS_BY_DAY):
                keys.append(scoreboard.counter_key(brand_id, dimension, day, guide_id, shard))
    keys += [scoreboard.counter_key(brand_id, CONTACTS_NOW, NOW_DAY, guide_id, s) for s in range(scoreboard.SHARDS)]
    totals: dict[str, int] = {}
    for item in ScoreCounter.batch_get(keys):
        for name, value in _metrics(item).items():
            totals[name] = totals.get(name, 0) + value
    return totals


def all_guides_figures(brand_id: str, first: date, last: date) -> dict[str, dict[str, int]]:
    """Every guide's figures over [first, last] (and current contacts): guide_id -> metrics."""
    out: dict[str, dict[str, int]] = {}

    def add(key, metrics):
        if key is None:
            return
        into = out.setdefault(key, {})
        for name, value in metrics.items():
            into[name] = into.get(name, 0) + value

    for dimension in ("guide", CONTACTS_BY_DAY, TASKS_BY_DAY):
        pk, _ = scoreboard.counter_key(brand_id, dimension, first.isoformat(), None, 0)
        for item in ScoreCounter.query(pk, ScoreCounter.sk.between(f"{first.isoformat()}#",
                                                                   f"{last.isoformat()}#~")):
            add(item.score_key, _metrics(item))
    pk, _ = scoreboard.counter_key(brand_id, CONTACTS_NOW, NOW_DAY, None, 0)
    for item in ScoreCounter.query(pk, ScoreCounter.sk.startswith(f"{NOW_DAY}#")):
        add(item.score_key, _metrics(item))
    return out


# ---- tags --------------------------------------------------------------------------------------

def change_tags(brand_id: str, member_id: str, guide_id: str, add: set[str], remove: set[str]) -> Member | None:
    """Add and remove tags of a member who is this guide's (first touch), with the tag index entries
    the planner reads (storage.audience), in one transaction; None when the member is not theirs (or
    does not exist). The member is read back consistently, so the answer shows the tags just set."""
    from chalicelib.storage import audience
    if not audience.change_tags(brand_id, member_id, add, remove, condition=Member.first_touch.guide_id == guide_id):
        return None
    return Member.get(audience.member_key(brand_id, member_id), "MEMBER", consistent_read=True)


def wecom_tag_ids(brand_id: str, names: list[str]) -> dict[str, str]:
    keys = [(f"B#{brand_id}", f"WECOMTAG#{name}") for name in names]
    return {item.sk.split("#", 1)[1]: item.tag_id for item in WecomTag.batch_get(keys)} if keys else {}


def remember_wecom_tag(brand_id: str, name: str, tag_id: str) -> None:
    WecomTag(f"B#{brand_id}", f"WECOMTAG#{name}", tag_id=tag_id).save()


__all__ = ["ContactUnchanged", "contact_added", "contact_removed", "contacts_of", "guide_figures",
           "all_guides_figures", "change_tags", "guide_by_wecom_user", "get_guide"]
