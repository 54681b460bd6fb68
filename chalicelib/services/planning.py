"""The planner: turns one fire of a campaign's schedule into chunks of recipients on the send queue.

A fire message (from EventBridge Scheduler) starts the run once — a second fire of the same
schedule finds the run and changes nothing — and fans out one message per audience shard. A shard
message pages its shard of the audience index (members by join time, never a table scan), keeps
the members the audience predicate selects, queues them as chunks of many recipients per SQS
message, and checkpoints its cursor after every page; a crash resumes after the last checkpoint,
and a lease keeps two deliveries of the same shard message from planning it twice. A planner near
its timeout re-queues itself; a paused campaign parks it; quiet hours defer the fire.

AWS cost per page of PAGE members: 1 Query on the index, 1 GetItem (pause check), 1 SendMessageBatch
per 10 chunks, 1 UpdateItem (checkpoint).
"""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from typing import Callable

from chalicelib.domain import campaigns as rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.observability import logger
from chalicelib.services import campaigns as service
from chalicelib.storage import campaigns as store

PAGE = 400                  # members read per index query
CHUNK = 200                 # recipients per send message (~20 KB)
LEASE = 30                  # seconds a shard planner owns its shard between checkpoints (a page takes < 1 s)
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
        campaign = store.get(brand_id, campaign_id, consistent=True)
        if campaign is None:
            logger.warning("fire for an unknown campaign", extra={"brand_id": brand_id, "campaign_id": campaign_id})
            return
        spec = rules.Spec.from_json(campaign.spec)
        run_id = body.get("fire") or rules.fire_id(spec.schedule, body.get("scheduled_time"))
        decision = rules.fire_decision(campaign.state, campaign.current_run, run_id)
        logger.append_keys(brand_id=brand_id, campaign_id=campaign_id, fire=run_id)
        if decision == "drop":
            logger.info("fire dropped", extra={"state": campaign.state, "current_run": campaign.current_run})
            return
        now = _now()
        if decision == "park":
            if store.park(campaign, run_id, "plan", {**body, "fire": run_id}, now):
                return
            continue                                   # resumed meanwhile: decide again
        if decision == "start":
            allowed = rules.next_allowed(now, spec.schedule.timezone, spec.quiet_hours)
            if allowed > now:
                logger.info("fire deferred by quiet hours", extra={"until": allowed.isoformat()})
                service.defer("plan", {**body, "fire": run_id}, allowed, now)
                return
            if not store.start_run(campaign, run_id, now):
                continue                                # a concurrent fire started it, or the state moved
        run = store.get_run(brand_id, campaign_id, run_id)
        if run is not None and not run.fanned_out:
            service.enqueue("plan", [{"kind": "shard", "brand_id": brand_id, "campaign_id": campaign_id,
                                      "fire": run_id, "shard": n} for n in range(AUDIENCE_SHARDS)])
            store.mark_fanned_out(brand_id, campaign_id, run_id)
            logger.info("run started")
        return


def _recipient(member) -> rules.Recipient:
    return rules.Recipient(member.member_id, member.mp_openid, member.oa_openid, member.oa_subscribed)


def _facts(member) -> rules.MemberFacts:
    stores = {t.store_id for t in (member.first_touch, member.last_touch) if t is not None and t.store_id}
    return rules.MemberFacts(member.member_id, member.joined_at, frozenset(member.tags or ()), frozenset(stores))


def plan_shard(body: dict, *, remaining: Callable[[], float]) -> None:
    brand_id, campaign_id, run_id, shard = body["brand_id"], body["campaign_id"], body["fire"], int(body["shard"])
    owner = secrets.token_hex(8)
    item = store.lease_shard(brand_id, campaign_id, run_id, shard, owner, time.time(), LEASE)
    if item is None:
        held = store.get_shard(brand_id, campaign_id, run_id, shard)
        if held is not None and held.state == "planning":
            # another delivery of this message plans it, or died doing so: look again when its
            # lease ends (a delayed message: no receive count is spent waiting)
            service.defer("plan", body, datetime.fromtimestamp(float(held.lease_until or 0), timezone.utc), _now())
        return
    try:
        _plan(body, item, owner, remaining)
    except BaseException:
        store.release_shard(item, owner)          # the redelivered message resumes from the checkpoint
        raise


def _plan(body: dict, item, owner: str, remaining: Callable[[], float]) -> None:
    brand_id, campaign_id, run_id, shard = body["brand_id"], body["campaign_id"], body["fire"], int(body["shard"])
    campaign = store.get(brand_id, campaign_id, consistent=True)
    spec = rules.Spec.from_json(campaign.spec)
    after, before = rules.join_range(spec.audience)
    cursor = _cursor(item.cursor)
    page = int(item.pages or 0)
    while True:
        if campaign.state == "cancelled":
            store.release_shard(item, owner)
            return
        if campaign.state == "paused":
            store.release_shard(item, owner)
            if store.park(campaign, run_id, "plan", body, _now()):
                return
            item = store.lease_shard(brand_id, campaign_id, run_id, shard, owner, time.time(), LEASE)
            if item is None:
                return
        if remaining() < SAFETY:
            store.release_shard(item, owner)
            service.enqueue("plan", [body])          # continue in a fresh invocation
            return
        members, next_cursor = store.audience_page(brand_id, shard, after, before, cursor, PAGE)
        recipients = [_recipient(m) for m in members if rules.eligible(campaign_id, spec.audience, _facts(m))]
        chunks = [recipients[i:i + CHUNK] for i in range(0, len(recipients), CHUNK)]
        service.enqueue("send", [{"kind": "chunk", "brand_id": brand_id, "campaign_id": campaign_id, "fire": run_id,
                                  "chunk": f"{shard:02d}-{page:05d}-{i}", "recipients": [r.pack() for r in chunk]}
                                 for i, chunk in enumerate(chunks)])
        if next_cursor is None:
            if store.finish_shard(brand_id, campaign_id, run_id, item, owner, len(recipients)):
                logger.info("shard planned", extra={"shard": shard, "targeted": int(item.targeted or 0) + len(recipients)})
                service.check_completion(brand_id, campaign_id, run_id)
            return
        if not store.checkpoint_shard(item, owner, next_cursor, len(recipients), time.time(), LEASE):
            logger.warning("planner lease lost; another planner continues", extra={"shard": shard})
            return
        cursor, page = next_cursor, page + 1
        campaign = store.get(brand_id, campaign_id, consistent=True)      # paused or cancelled meanwhile?


def _cursor(text: str | None) -> dict | None:
    import json
    return json.loads(text) if text else None
