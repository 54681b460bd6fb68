"""Reading a campaign's audience: the audience index (members by join time, gsi1) and the tag index.

The tag index is sparse: one small item per (member, tag), in the partition of the tag and the
member's audience shard (so a shard planner reads only its shard), keyed by member id. It is written
in the same transaction as every change of a member's tags (storage.members.commit_touch,
`change_tags` here), so it can never miss a tag a member carries; a stale extra entry could only
come from a backfill racing a removal, and costs one member read — the planner checks every member it
reads against the whole audience, never trusts the index alone.

AWS cost: a scan page is 1 Query; a tag page is 1 Query per tag read (items of ~60 B: ~60 per
read unit) and the members behind it 1 BatchGetItem per 100.
"""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain.members import AUDIENCE_SHARDS, audience_shard
from chalicelib.storage.members import member_key
from chalicelib.storage.models import Member, TagEntry, TagIndexState
from chalicelib.storage.tx import Tx

MAX_TAGS_PER_CHANGE = 40


def audience_partition(brand_id: str, shard: int) -> str:
    return f"B#{brand_id}#AUD#{shard:02d}"


def tag_partition(brand_id: str, tag: str, shard: int) -> str:
    # the shard is always the last `#nn`, so a tag holding '#' still names one partition only
    return f"B#{brand_id}#TAG#{tag}#{shard:02d}"


# ---- the audience index --------------------------------------------------------------------

def audience_page(brand_id: str, shard: int, after: str | None, before: str | None, position: str | None,
                  limit: int) -> tuple[list[Member], bool]:
    """Up to `limit` members of one audience shard in the join window [after, before), in sort-key
    order (`<joined_at>#<member>`), strictly after `position`. One Query. Returns (members, more)."""
    pk = audience_partition(brand_id, shard)
    low = position or after
    if low and before:
        condition = Member.gsi1sk.between(low, before)      # inclusive: `position` itself is dropped below
    elif position:
        condition = Member.gsi1sk > position
    elif after:
        condition = Member.gsi1sk >= after
    elif before:
        condition = Member.gsi1sk < before
    else:
        condition = None
    results = Member.gsi1.query(pk, condition, limit=limit, page_size=limit)
    members = [m for m in results if isinstance(m, Member) and m.gsi1sk != position]
    return members, results.last_evaluated_key is not None


# ---- the tag index --------------------------------------------------------------------------

def tag_page(brand_id: str, tags: tuple[str, ...], shard: int, position: str | None,
             limit: int) -> tuple[list[str], bool]:
    """Member ids (ascending) of one audience shard carrying any of `tags`, strictly after the member
    id `position`; each id once. One Query per tag. Returns (member ids, more)."""
    found: set[str] = set()
    bound = None                        # the merge is complete only up to the lowest unfinished tag's last id
    for tag in tags:
        condition = TagEntry.sk > position if position else None
        results = TagEntry.query(tag_partition(brand_id, tag, shard), condition, limit=limit, page_size=limit)
        ids = [e.sk for e in results]
        found.update(ids)
        if results.last_evaluated_key is not None and ids:
            bound = ids[-1] if bound is None else min(bound, ids[-1])
    ordered = sorted(i for i in found if bound is None or i <= bound)
    return ordered, bound is not None


def members(brand_id: str, member_ids: list[str]) -> list[Member]:
    """The member items, in the order asked (BatchGetItems of 100, eventually consistent: a tag added
    a moment ago may be missed like a member who joined a moment after the page was read)."""
    by_id: dict[str, Member] = {}
    keys = [(member_key(brand_id, m), "MEMBER") for m in member_ids]
    for item in Member.batch_get(keys):
        if isinstance(item, Member):
            by_id[item.member_id] = item
    return [by_id[m] for m in member_ids if m in by_id]


def tag_writes(tx: Tx, brand_id: str, member_id: str, add: set[str], remove: set[str]) -> None:
    """The tag index's side of a change of the member's tags, added to the transaction making it. A put
    of an entry that exists rewrites the same item, so re-adding a tag (or a retried change) is harmless."""
    shard = audience_shard(member_id)
    for tag in sorted(add):
        tx.save(f"tag:{tag}", TagEntry(tag_partition(brand_id, tag, shard), member_id, member_id=member_id))
    for tag in sorted(remove):
        tx.delete(f"untag:{tag}", TagEntry(tag_partition(brand_id, tag, shard), member_id))


def change_tags(brand_id: str, member_id: str, add: set[str], remove: set[str], condition=None) -> bool:
    """Add and remove tags of a member and their tag index entries in one transaction; False when the
    member does not exist or `condition` (on the member item) refused it — then nothing changed."""
    if add & remove:
        raise ValueError("a tag cannot be both added and removed")
    if len(add) + len(remove) > MAX_TAGS_PER_CHANGE:
        raise ValueError("too many tags in one change")
    # DynamoDB refuses ADD and DELETE of one attribute in one update expression ("two document paths
    # overlap"), and one transaction may touch an item once: the removals commit first, then the
    # additions, each with its index entries and under the same condition. Both are set operations, so
    # a retry after a failure between the two completes the change without doubling anything; a
    # refusal (condition) stops at the first, having changed nothing.
    check = Member.pk.exists() if condition is None else Member.pk.exists() & condition
    for action, adding, removing in ((Member.tags.delete, set(), set(remove)), (Member.tags.add, set(add), set())):
        tags = adding or removing
        if not tags:
            continue
        tx = Tx()
        tx.update("member", Member(member_key(brand_id, member_id), "MEMBER"), [action(tags)], condition=check)
        tag_writes(tx, brand_id, member_id, adding, removing)
        if tx.attempt():
            return False
    return True


def mark_complete(brand_id: str, now: datetime) -> None:
    """Every member's tags have entries from now on (a new brand, or a finished backfill)."""
    TagIndexState(f"B#{brand_id}", "TAGINDEX", since=now.isoformat()).save()


def is_complete(brand_id: str) -> bool:
    try:
        TagIndexState.get(f"B#{brand_id}", "TAGINDEX")
        return True
    except DoesNotExist:
        return False


def backfill(brand_id: str, now: datetime) -> int:
    """Write the entries of every member's tags (a brand whose members were tagged before the index
    existed), then mark the index complete. Tags changed meanwhile write their own entries; an entry
    re-added for a tag removed meanwhile only costs the planner a member read. Returns entries written."""
    written = 0
    with TagEntry.batch_write() as batch:
        for shard in range(AUDIENCE_SHARDS):
            for member in Member.gsi1.query(audience_partition(brand_id, shard)):
                if not isinstance(member, Member):
                    continue
                for tag in sorted(member.tags or ()):
                    batch.save(TagEntry(tag_partition(brand_id, tag, shard), member.member_id,
                                        member_id=member.member_id))
                    written += 1
    mark_complete(brand_id, now)
    return written
