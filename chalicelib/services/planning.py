"""The planner: turns one fire of a campaign's schedule into chunks of recipients on the send queue.

A fire message (from EventBridge Scheduler) starts the run once — a second fire of the same
schedule finds the run and changes nothing — and fans out one message per audience shard. A shard
message reads its shard of the audience index (members by join time, never a table scan) or, for a
tag audience whose tags are rare, of the tag index (storage.audience); keeps the members the
audience selects; and queues them in full chunks of CHUNK recipients whatever the page boundaries
(domain.planning: the partial chunk is carried into the next page). After each batch of chunks it
queues, it checkpoints the position of the last member queued; a crash resumes there and derives
the same carry and the same chunks again, so no member is planned twice or lost. A lease keeps two
deliveries of the same shard message from planning it together. A planner near its timeout
re-queues itself; a paused campaign parks it; quiet hours defer the fire.

AWS cost per shard: 1 GetItem (the campaign) + 1 UpdateItem (the mode), then per PAGE members read
1 Query (scan) — or per TAG_PAGE tagged members 1 Query per tag + 1 BatchGetItem per 100 —, and per
FLUSH_CHUNKS chunks 1 SendMessageBatch + 1 UpdateItem (checkpoint) + 1 GetItem (pause check). At
10% eligibility: ~12 requests per 1,000 recipients (bench.planner).
"""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from typing import Callable

from chalicelib.domain import campaigns as rules
from chalicelib.domain import planning as plan_rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.observability import logger
from chalicelib.services import campaigns as service
from chalicelib.storage import audience as audience_store
from chalicelib.storage import campaigns as campaign_store

PAGE = 1000                 # members read per audience-index query (~0.7 KB each: under the 1 MB a page holds)
TAG_PAGE = 1000             # tag-index entries read per query (~60 B each)
CHUNK = plan_rules.CHUNK    # recipients per send message (~22 KB)
FLUSH_CHUNKS = 10           # full chunks queued per SendMessageBatch (~220 KB of the 256 KB it carries)
FLUSH_SECONDS = 1.0         # ... or fewer, once a full chunk has waited this long: sends start early
LEASE = 30                  # seconds a shard planner owns its shard between writes (a page takes < 1 s)
RENEW = LEASE / 3           # renew the lease when this long has passed without a checkpoint
LOOK = 2.0                  # seconds between looks at the campaign's state (pause, cancel)
SAFETY = 15                 # seconds of runway kept before the Lambda timeout


def _now() -> datetime:
    return datetime.now(timezone.utc)


def handle(body: dict, *, remaining: Callable[[], float] = lambda: 900.0) -> None:
    """Handle one plan-queue message: a schedule fire or a shard to plan."""
    kind = body.get("kind")
    if kind == "fire":
        fire(body)
    elif kind == "shard":
        plan_shard(body, remaining=remaining)
    else:
        raise ValueError(f"unknown plan message {kind!r}")


def fire(body: dict) -> None:
    brand_id, campaign_id = body["brand_id"], body["campaign_id"]
    for _attempt in range(5):
        campaign = campaign_store.get(brand_id, campaign_id, consistent=True)
        if campaign is None:
            logger.warning("fire for an unknown campaign", extra={"brand_id": brand_id, "campaign_id": campaign_id})
            return
        spec = rules.Spec.from_json(campaign.spec)
        run_id = rules.run_id_of(body, required=False) or rules.run_id_for(spec.schedule, body.get("scheduled_time"))
        decision = rules.fire_decision(campaign.state, campaign.current_run, run_id)
        logger.append_keys(brand_id=brand_id, campaign_id=campaign_id, run_id=run_id)
        if decision == "drop":
            logger.info("fire dropped", extra={"state": campaign.state, "current_run": campaign.current_run})
            return
        now = _now()
        if decision == "park":
            if campaign_store.park(campaign, run_id, "plan", {**body, "run_id": run_id}, now):
                return
            continue                                   # resumed meanwhile: decide again
        if decision == "start":
            allowed = rules.next_allowed(now, spec.schedule.timezone, spec.quiet_hours)
            if allowed > now:
                logger.info("fire deferred by quiet hours", extra={"until": allowed.isoformat()})
                service.defer("plan", {**body, "run_id": run_id}, allowed, now)
                return
            if not campaign_store.start_run(campaign, run_id, now):
                continue                                # a concurrent fire started it, or the state moved
        run = campaign_store.get_run(brand_id, campaign_id, run_id)
        if run is not None and not run.fanned_out:
            service.enqueue("plan", [{"kind": "shard", "brand_id": brand_id, "campaign_id": campaign_id,
                                      "run_id": run_id, "shard": n} for n in range(AUDIENCE_SHARDS)])
            campaign_store.mark_fanned_out(brand_id, campaign_id, run_id)
            logger.info("run started")
        return


def _recipient(member, with_touch: bool = False) -> rules.Recipient:
    """`with_touch` (the campaign gives a coupon): the member's first touch rides in the chunk, so the
    sender keys each coupon's counters without reading the member again."""
    touch = member.first_touch if with_touch else None
    return rules.Recipient(member.member_id, member.mp_openid, member.oa_openid, member.oa_subscribed,
                           (touch.store_id, touch.guide_id, touch.scene) if touch is not None
                           else (None, None, None) if with_touch else None)


def _facts(member) -> rules.MemberFacts:
    stores = {t.store_id for t in (member.first_touch, member.last_touch) if t is not None and t.store_id}
    return rules.MemberFacts(member.member_id, member.joined_at, frozenset(member.tags or ()), frozenset(stores))


def plan_shard(body: dict, *, remaining: Callable[[], float]) -> None:
    brand_id, campaign_id, run_id, shard = body["brand_id"], body["campaign_id"], rules.run_id_of(body), int(body["shard"])
    owner = secrets.token_hex(8)
    item = campaign_store.lease_shard(brand_id, campaign_id, run_id, shard, owner, time.time(), LEASE)
    if item is None:
        held = campaign_store.get_shard(brand_id, campaign_id, run_id, shard)
        if held is not None and held.state == "planning":
            # another delivery of this message plans it, or died doing so: look again when its
            # lease ends (a delayed message: no receive count is spent waiting)
            service.defer("plan", body, datetime.fromtimestamp(float(held.lease_until or 0), timezone.utc), _now())
        return
    try:
        _plan(body, item, owner, remaining)
    except BaseException:
        campaign_store.release_shard(item, owner)          # the redelivered message resumes from the checkpoint
        raise


class _Reader:
    """Pages of one shard's audience as (position, member) pairs, after a position, from the index the
    checkpoint's mode names."""

    def __init__(self, brand_id: str, shard: int, audience: rules.Audience):
        self.brand_id, self.shard, self.audience = brand_id, shard, audience
        self.after, self.before = rules.join_range(audience)

    def scan(self, position: str | None) -> tuple[list[tuple[str, object]], bool]:
        members, more = audience_store.audience_page(self.brand_id, self.shard, self.after, self.before, position,
                                                     PAGE)
        return [(m.gsi1sk, m) for m in members], more

    def tagged(self, tags: tuple[str, ...], position: str | None) -> tuple[list[tuple[str, object]], bool, str | None]:
        ids, more = audience_store.tag_page(self.brand_id, tags, self.shard, position, TAG_PAGE)
        found = audience_store.members(self.brand_id, ids) if ids else []
        return [(m.member_id, m) for m in found], more, (ids[-1] if ids else position)

    def choose(self) -> tuple[plan_rules.Checkpoint, tuple | None]:
        """The mode for this shard, from one page of the scan (handed back to be planned when the
        scan is kept). The tag index is read only where it is complete (storage.audience.is_complete)."""
        page, more = self.scan(None)
        if more:
            tags = plan_rules.index_choice(self.audience, [frozenset(m.tags or ()) for _, m in page])
            if tags and audience_store.is_complete(self.brand_id):
                return plan_rules.Checkpoint("tags", tags, None, 0), None
        return plan_rules.Checkpoint("scan", (), None, 0), (page, more)


def _plan(body: dict, item, owner: str, remaining: Callable[[], float]) -> None:
    brand_id, campaign_id, run_id, shard = body["brand_id"], body["campaign_id"], rules.run_id_of(body), int(body["shard"])
    campaign = campaign_store.get(brand_id, campaign_id, consistent=True)
    if campaign.state in ("cancelled", "paused"):
        _stop(body, item, owner, remaining, brand_id, campaign_id, run_id, [], None)
        return
    spec = rules.Spec.from_json(campaign.spec)
    reader = _Reader(brand_id, shard, spec.audience)
    point = plan_rules.Checkpoint.from_json(item.cursor)
    first = None
    if point.mode is None:
        # the mode is fixed (checkpointed) before the first chunk is queued: a resumed planner reads
        # the same index in the same order, so it derives the same chunks
        point, first = reader.choose()
        if not campaign_store.checkpoint_shard(item, owner, point.to_dict(), 0, time.time(), LEASE):
            logger.warning("planner lease lost; another planner continues", extra={"shard": shard})
            return
    logger.info("shard planning", extra={"shard": shard, "mode": point.mode, "tags": list(point.tags),
                                         "resume_at": point.position, "chunks": point.chunks})
    cutter = plan_rules.Cutter(CHUNK)
    pending: list[list] = []                  # full chunks not yet queued
    waiting_since = 0.0                       # when the oldest of them filled
    read_at = point.position
    last_write = last_look = time.time()

    def flush(chunks: list[list], *, finish: bool) -> bool:
        """Queue `chunks`, then record them in the checkpoint (or finish the shard); False if the
        lease was lost (stop: the planner holding it continues from its own checkpoint)."""
        nonlocal point, last_write
        service.enqueue("send", [{"kind": "chunk", "brand_id": brand_id, "campaign_id": campaign_id,
                                  "run_id": run_id, "chunk": plan_rules.chunk_id(shard, point.chunks + i),
                                  "recipients": [r.pack() for _, r in chunk]} for i, chunk in enumerate(chunks)])
        added = sum(len(c) for c in chunks)
        if finish:
            if campaign_store.finish_shard(brand_id, campaign_id, run_id, item, owner, added):
                logger.info("shard planned", extra={"shard": shard, "targeted": int(item.targeted or 0) + added,
                                                    "chunks": point.chunks + len(chunks)})
                service.check_completion(brand_id, campaign_id, run_id)
                return True
            return False
        if chunks:
            point = point.advanced(chunks[-1][-1][0], len(chunks))
        last_write = time.time()
        return campaign_store.checkpoint_shard(item, owner, point.to_dict(), added, last_write, LEASE)

    while True:
        if first is not None:
            (page, more), first = first, None
        elif point.mode == "tags":
            page, more, read_at = reader.tagged(point.tags, read_at)
        else:
            page, more = reader.scan(read_at)
        eligible = [(pos, _recipient(m, bool(spec.coupon_template_id))) for pos, m in page
                    if rules.eligible(campaign_id, spec.audience, _facts(m))]
        if page and point.mode == "scan":
            read_at = page[-1][0]
        full = cutter.add(eligible)
        if full and not pending:
            waiting_since = time.time()
        pending += full
        if not more:
            if not flush(pending + cutter.rest(), finish=True):
                logger.warning("planner lease lost at the end of the shard", extra={"shard": shard})
            return
        now = time.time()
        if pending and (len(pending) >= FLUSH_CHUNKS or now - waiting_since >= FLUSH_SECONDS):
            done, pending = pending, []
            if not flush(done, finish=False):
                logger.warning("planner lease lost; another planner continues", extra={"shard": shard})
                return
        elif now - last_write >= RENEW and not flush([], finish=False):
            logger.warning("planner lease lost; another planner continues", extra={"shard": shard})
            return
        if now - last_look >= LOOK or remaining() < SAFETY:
            last_look = now
            if _stop(body, item, owner, remaining, brand_id, campaign_id, run_id, pending, flush):
                return


def _stop(body: dict, item, owner: str, remaining, brand_id: str, campaign_id: str, run_id: str,
          pending: list[list], flush) -> bool:
    """Whether to stop here: cancelled (drop), paused (park the message) or out of time (re-queue it).
    The full chunks read so far are queued first (except when cancelled); the partial chunk is derived
    again by whoever resumes from the checkpoint."""
    campaign = campaign_store.get(brand_id, campaign_id, consistent=True)
    if campaign.state == "cancelled":
        campaign_store.release_shard(item, owner)
        return True
    if campaign.state != "paused" and remaining() >= SAFETY:
        return False
    if pending:
        done = list(pending)
        pending.clear()
        if not flush(done, finish=False):
            return True
    campaign_store.release_shard(item, owner)
    if campaign.state == "paused" and campaign_store.park(campaign, run_id, "plan", body, _now()):
        return True
    service.enqueue("plan", [body])              # out of time (or resumed meanwhile): a fresh invocation continues
    return True
