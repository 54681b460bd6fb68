"""The planner on the emulator: full chunks across page boundaries, exactly one chunk per eligible member
when a planner dies mid-shard and another resumes, and tag audiences read through the tag index giving
the recipients the scan gives.

The planner's own messages (the fan-out and the chunks) are captured where it queues them
(services.campaigns.enqueue), so no sender consumes them; everything it reads and checkpoints is in
DynamoDB. Pages and chunks are made small so a shard of ~20 members spans many of both.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.members import Shopper, Touch, audience_shard, plan_touch
from chalicelib.ids import new_id
from chalicelib.services import campaigns as campaign_service
from chalicelib.services import planning
from chalicelib.storage import audience
from chalicelib.storage import campaigns as campaign_store
from chalicelib.storage import members as member_store
from chalicelib.storage.models import PlanShard, TagEntry
from tests.integration.campaign_fixtures import create_campaign
from tests.integration.conftest import new_brand

MEMBERS = 320


def _tags_of(i: int) -> tuple[str, ...]:
    tags = []
    if i % 40 == 0:
        tags.append("rare")                 # 2.5%
    if i % 25 == 3:
        tags.append("other")                # 4%
    if i % 2 == 0:
        tags.append("common")               # 50%
    return tuple(tags)


@pytest.fixture(scope="module")
def people(stack, api):
    """A brand of MEMBERS members: 10% met at store sz (the rest at sh), tags by _tags_of. Returns
    (brand, {member_id: (store, tags)})."""
    from concurrent.futures import ThreadPoolExecutor
    brand = new_brand(stack, api, "plan")
    now = datetime.now(timezone.utc)

    def one(i: int) -> tuple[str, tuple[str, tuple]]:
        store_id = "sz" if i % 10 == 0 else "sh"
        at = (now - timedelta(days=2, seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        touch = Touch(store_id, None, "S1", "counter_poster", "mp", at)
        plan = plan_touch(brand_id=brand.brand_id, shopper=Shopper(mp=f"op_{brand.brand_id}_{i:04d}"), found={},
                          touch=touch, channel=None, new_member_id=new_id("m"), subscribed=None)
        plan.tags = _tags_of(i)
        plan.events.clear()
        plan.tasks.clear()
        member_store.commit_touch(brand.brand_id, plan, inbound=None, event="test", now=now)
        return plan.member_id, (store_id, plan.tags)

    with ThreadPoolExecutor(8) as pool:
        return brand, dict(pool.map(one, range(MEMBERS)))


@pytest.fixture
def small(monkeypatch):
    """Small pages and chunks, a chunk queued as soon as it is full (so a shard checkpoints often)."""
    monkeypatch.setattr(planning, "PAGE", 5)
    monkeypatch.setattr(planning, "TAG_PAGE", 4)
    monkeypatch.setattr(planning, "CHUNK", 2)
    monkeypatch.setattr(planning, "FLUSH_CHUNKS", 1)


class Queues:
    def __init__(self, monkeypatch):
        self.plan: list[dict] = []
        self.send: list[dict] = []
        monkeypatch.setattr(campaign_service, "enqueue", self.enqueue)

    def enqueue(self, key: str, bodies: list[dict], *, delay: int = 0) -> None:
        getattr(self, key).extend(bodies)


@pytest.fixture
def queues(monkeypatch) -> Queues:
    return Queues(monkeypatch)


def start(brand, queues: Queues, audience_body: dict) -> tuple[str, list[dict]]:
    """Create a campaign and fire it; returns (campaign id, its shard messages)."""
    created = create_campaign(brand, audience=audience_body)
    planning.handle({"kind": "fire", "brand_id": brand.brand_id, "campaign_id": created["campaign_id"],
                     "run_id": "f1"})
    shards, queues.plan[:] = list(queues.plan), []
    assert sorted(m["shard"] for m in shards) == list(range(16))
    return created["campaign_id"], shards


def plan_all(shards: list[dict]) -> None:
    for message in shards:
        planning.handle(message, remaining=lambda: 900.0)


def chunks_by_id(queues: Queues) -> dict[str, list[str]]:
    """Chunk id -> member ids; a chunk queued twice (a resumed planner) must be queued identically."""
    out: dict[str, list[str]] = {}
    for body in queues.send:
        members = [r["m"] for r in body["recipients"]]
        assert out.setdefault(body["chunk"], members) == members, f"chunk {body['chunk']} queued with other members"
    return out


def planned_once(queues: Queues) -> list[str]:
    """Every member in the chunks, each chunk counted once; asserts no member is in two chunks."""
    everyone = [m for members in chunks_by_id(queues).values() for m in members]
    assert len(everyone) == len(set(everyone)), "a member was planned into two chunks"
    return everyone


def assert_full_chunks(queues: Queues, size: int) -> None:
    by_shard = defaultdict(list)
    for chunk_id, members in chunks_by_id(queues).items():
        shard, n = chunk_id.split("-c")
        by_shard[shard].append((int(n), len(members)))
    for shard, chunks in by_shard.items():
        chunks.sort()
        assert [n for n, _ in chunks] == list(range(len(chunks))), f"shard {shard}: chunk numbers with gaps"
        assert all(count == size for _, count in chunks[:-1]), f"shard {shard}: {chunks}"
        assert 1 <= chunks[-1][1] <= size


def run_of(brand, campaign_id: str):
    return campaign_store.get_run(brand.brand_id, campaign_id, "f1")


def test_chunks_are_full_across_pages_at_ten_percent_eligibility(people, queues, small):
    brand, facts = people
    campaign_id, shards = start(brand, queues, {"store_ids": ["sz"]})
    plan_all(shards)
    expected = {m for m, (store_id, _) in facts.items() if store_id == "sz"}
    assert len(expected) == MEMBERS // 10
    assert sorted(planned_once(queues)) == sorted(expected)
    assert_full_chunks(queues, 2)
    # ~2 eligible members per shard of ~20, 5 a page: without carry-over nearly every chunk held 1
    assert len(chunks_by_id(queues)) == sum(-(-n // 2) for n in _per_shard(expected).values())
    run = run_of(brand, campaign_id)
    assert int(run.targeted) == len(expected) and int(run.shards_done) == 16


def _per_shard(member_ids) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for m in member_ids:
        out[audience_shard(m)] += 1
    return out


class Died(BaseException):
    """The planner's container died here (nothing after it runs, not even the lease release)."""


@pytest.mark.parametrize("where", ["after_queueing", "before_queueing"])
@pytest.mark.parametrize("tag_index", [False, True], ids=["scan", "tag-index"])
def test_a_planner_that_dies_mid_shard_is_resumed_with_no_member_twice_or_lost(
        people, queues, small, monkeypatch, where, tag_index):
    """Half the members (tag `common`), chunks of 4, 5 members a page: ~3 chunks a shard. The first shard
    to queue its second chunk dies after queueing it (its checkpoint unwritten) or before (the
    checkpoint after chunk 1 written); its lease runs out and the redelivered message resumes."""
    brand, facts = people
    monkeypatch.setattr(planning, "CHUNK", 4)
    if tag_index:
        monkeypatch.setattr(planning.plan_rules, "INDEX_BELOW", 1.01)
    else:
        monkeypatch.setattr(audience, "is_complete", lambda brand_id: False)
    campaign_id, shards = start(brand, queues, {"tags_any": ["common"]})
    checkpoint, enqueue = campaign_store.checkpoint_shard, queues.enqueue
    per_shard: dict[str, int] = defaultdict(int)
    died: list[int] = []

    def dying_checkpoint(item, owner, cursor, added, now, lease):
        if added and where == "after_queueing" and not died:
            per_shard[item.sk] += 1
            if per_shard[item.sk] == 2:
                died.append(int(item.sk[-2:]))
                raise Died()
        return checkpoint(item, owner, cursor, added, now, lease)

    def dying_enqueue(key, bodies, *, delay=0):
        if key == "send" and where == "before_queueing" and not died:
            shard = bodies[0]["chunk"][:2]
            per_shard[shard] += 1
            if per_shard[shard] == 2:
                died.append(int(shard))
                raise Died()
        return enqueue(key, bodies, delay=delay)

    monkeypatch.setattr(campaign_store, "checkpoint_shard", dying_checkpoint)
    monkeypatch.setattr(campaign_service, "enqueue", dying_enqueue)
    monkeypatch.setattr(campaign_store, "release_shard", lambda item, owner: None)
    for message in shards:
        try:
            planning.handle(message, remaining=lambda: 900.0)
        except Died:
            pass
    assert len(died) == 1
    assert int(run_of(brand, campaign_id).shards_done) == 15
    # its lease runs out; SQS delivers the shard message again (and the others, which find their shards done)
    PlanShard(*campaign_store.shard_key(brand.brand_id, campaign_id, "f1", died[0])).update(
        actions=[PlanShard.lease_until.set(0)])
    plan_all(shards)
    expected = {m for m, (_, tags) in facts.items() if "common" in tags}
    assert sorted(planned_once(queues)) == sorted(expected)
    assert_full_chunks(queues, 4)
    run = run_of(brand, campaign_id)
    assert int(run.targeted) == len(expected) and int(run.shards_done) == 16


@pytest.mark.parametrize("audience_body,wanted", [
    ({"tags_any": ["rare", "other"]}, lambda tags: bool({"rare", "other"} & set(tags))),
    ({"tags_all": ["common"], "tags_any": ["other", "rare"]},
     lambda tags: "common" in tags and bool({"rare", "other"} & set(tags))),
], ids=["any-two", "all-and-any"])
def test_a_tag_audience_through_the_tag_index_gets_the_recipients_the_scan_gets(
        people, queues, small, monkeypatch, audience_body, wanted):
    brand, facts = people
    monkeypatch.setattr(planning.plan_rules, "INDEX_BELOW", 1.01)
    read = []
    tag_page = audience.tag_page
    monkeypatch.setattr(audience, "tag_page", lambda *a, **k: read.append(a[2]) or tag_page(*a, **k))
    _, shards = start(brand, queues, audience_body)
    plan_all(shards)
    through_index = planned_once(queues)
    assert_full_chunks(queues, 2)
    assert set(read) == set(range(16)), "every shard (of ~20 members, 5 a page) read the tag index"

    queues.send.clear()
    monkeypatch.setattr(audience, "is_complete", lambda brand_id: False)     # the scan
    read.clear()
    _, shards = start(brand, queues, audience_body)
    plan_all(shards)
    assert read == []
    through_scan = planned_once(queues)
    expected = {m for m, (_, tags) in facts.items() if wanted(tags)}
    assert expected and sorted(through_index) == sorted(through_scan) == sorted(expected)


def test_a_stale_tag_entry_plans_nobody_who_lacks_the_tag(people, queues, small, monkeypatch):
    brand, facts = people
    monkeypatch.setattr(planning.plan_rules, "INDEX_BELOW", 1.01)
    untagged = next(m for m, (_, tags) in facts.items() if not tags)
    stale = TagEntry(audience.tag_partition(brand.brand_id, "rare", audience_shard(untagged)), untagged,
                     member_id=untagged)
    stale.save()
    try:
        _, shards = start(brand, queues, {"tags_all": ["rare"]})
        plan_all(shards)
        assert sorted(planned_once(queues)) == sorted(m for m, (_, tags) in facts.items() if "rare" in tags)
    finally:
        stale.delete()


# ---- the tag index kept in step with the members' tags ------------------------------------------

UNIVERSE = ("a", "b", "c", "vip", "sz")


def entries_of(brand_id: str, member_id: str) -> set[str]:
    shard = audience_shard(member_id)
    found = set()
    for tag in UNIVERSE:
        if list(TagEntry.query(audience.tag_partition(brand_id, tag, shard), TagEntry.sk == member_id,
                               consistent_read=True)):
            found.add(tag)
    return found


def tags_of(brand_id: str, member_id: str) -> set[str]:
    from chalicelib.storage.models import Member
    return set(Member.get(member_store.member_key(brand_id, member_id), "MEMBER", consistent_read=True).tags or ())


def touch(brand_id: str, member_id: str | None, tags: tuple[str, ...], inbound: str | None) -> str:
    now = datetime.now(timezone.utc)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = plan_touch(brand_id=brand_id, shopper=Shopper(mp=f"t_{member_id or new_id('x')}"),
                      found={("mp", "x"): member_id} if member_id else {},
                      touch=Touch("sz", None, "S1", "poster", "mp", at), channel=None,
                      new_member_id=new_id("m"), subscribed=None)
    plan.tags = tags
    plan.events.clear()
    plan.tasks.clear()
    plan.link = [] if member_id else plan.link
    member_store.commit_touch(brand_id, plan, inbound=inbound, event="test", now=now)
    return plan.member_id


def test_touches_write_the_tag_entries_with_the_tags_and_a_retried_callback_changes_nothing(make_brand):
    brand = make_brand("tags")
    member_id = touch(brand.brand_id, None, ("vip",), inbound="first")
    assert tags_of(brand.brand_id, member_id) == entries_of(brand.brand_id, member_id) == {"vip"}
    touch(brand.brand_id, member_id, ("sz", "vip"), inbound="second")          # a later touch adds a tag
    assert tags_of(brand.brand_id, member_id) == entries_of(brand.brand_id, member_id) == {"vip", "sz"}
    with pytest.raises(member_store.Duplicate):
        touch(brand.brand_id, member_id, ("a",), inbound="second")            # WeChat's retry
    assert tags_of(brand.brand_id, member_id) == entries_of(brand.brand_id, member_id) == {"vip", "sz"}


def test_adding_and_removing_tags_keeps_the_index_exact_under_retries_refusals_and_races(make_brand):
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.storage.models import Member
    brand = make_brand("tags")
    member_id = touch(brand.brand_id, None, ("vip",), inbound=None)
    b = brand.brand_id
    assert audience.change_tags(b, member_id, {"a", "b"}, set())
    assert audience.change_tags(b, member_id, {"a", "b"}, set())              # a retry: the same state
    assert tags_of(b, member_id) == entries_of(b, member_id) == {"vip", "a", "b"}
    assert audience.change_tags(b, member_id, set(), {"a", "vip"})
    assert audience.change_tags(b, member_id, set(), {"a", "vip"})            # a retried removal
    assert tags_of(b, member_id) == entries_of(b, member_id) == {"b"}
    # refused by the caller's condition (e.g. not this guide's member): neither side changes
    assert not audience.change_tags(b, member_id, {"c"}, {"b"}, condition=Member.touches > 99)
    assert tags_of(b, member_id) == entries_of(b, member_id) == {"b"}
    assert not audience.change_tags(b, "m_nobody", {"c"}, set())
    assert entries_of(b, "m_nobody") == set()
    with pytest.raises(ValueError):
        audience.change_tags(b, member_id, {"c"}, {"c"})

    def flip(i: int) -> None:
        tag = UNIVERSE[i % 3]
        for _attempt in range(20):            # a transaction conflict is retried, as a caller would
            try:
                (audience.change_tags(b, member_id, {tag}, set()) if i % 2 else
                 audience.change_tags(b, member_id, set(), {tag}))
                return
            except Exception as err:          # noqa: BLE001 - TransactionConflict under the race
                if "Conflict" not in type(err).__name__ and "Conflict" not in str(err):
                    raise
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(flip, range(24)))
    assert tags_of(b, member_id) == entries_of(b, member_id)


def test_a_backfill_indexes_members_tagged_before_the_index(make_brand, queues, small, monkeypatch):
    brand = make_brand("tags")
    b = brand.brand_id
    members = [touch(b, None, ("vip",) if i % 3 == 0 else ("c",), inbound=None) for i in range(12)]
    for m in members:                         # as if tagged before the index existed
        for tag in entries_of(b, m):
            TagEntry(audience.tag_partition(b, tag, audience_shard(m)), m).delete()
    TagIndexKey = audience.TagIndexState(f"B#{b}", "TAGINDEX")
    TagIndexKey.delete()
    assert not audience.is_complete(b)
    assert audience.backfill(b, datetime.now(timezone.utc)) == len(members)
    assert audience.is_complete(b)
    assert all(entries_of(b, m) == tags_of(b, m) for m in members)


def test_a_planner_paused_mid_shard_parks_and_resume_finishes_it_with_no_member_twice(people, queues, small,
                                                                                     monkeypatch):
    """Pause lands while shard planners are at work: the one that sees it queues its full chunks, parks
    its message and stops; resume re-queues the parked messages and planning completes, exactly once."""
    brand, facts = people
    monkeypatch.setattr(planning, "LOOK", 0.0)                    # look at the campaign after every page
    campaign_id, shards = start(brand, queues, {"tags_any": ["common"]})
    monkeypatch.setattr(audience, "is_complete", lambda brand_id: False)
    enqueue = queues.enqueue
    paused = []

    def pausing_enqueue(key, bodies, *, delay=0):
        enqueue(key, bodies, delay=delay)
        if key == "send" and not paused:
            paused.append(True)
            r = brand.admin("POST", f"/campaigns/{campaign_id}/pause")
            assert r.status_code == 200 and r.json()["state"] == "paused", r.text

    monkeypatch.setattr(campaign_service, "enqueue", pausing_enqueue)
    plan_all(shards)
    run = run_of(brand, campaign_id)
    assert int(run.shards_done) < 16
    parked = campaign_store.parked(brand.brand_id, campaign_id)
    assert parked, "the planners that saw the pause parked their messages"
    queues.plan.clear()
    r = brand.admin("POST", f"/campaigns/{campaign_id}/resume")
    assert r.status_code == 200, r.text
    assert len(queues.plan) == len(parked)
    plan_all(list(queues.plan))
    expected = {m for m, (_, tags) in facts.items() if "common" in tags}
    assert sorted(planned_once(queues)) == sorted(expected)
    assert_full_chunks(queues, 2)
    run = run_of(brand, campaign_id)
    assert int(run.targeted) == len(expected) and int(run.shards_done) == 16
