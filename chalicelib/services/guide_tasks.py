"""Head-office tasks (总部直达导购): create, fire, create at WeCom exactly once per guide and chunk, poll
the guides' confirmations and the customers' results until due, announce completion.

Messages on the guidetasks queue (handlers/guide_tasks.py):
- `fire` (EventBridge Scheduler at send_at; at-least-once): running once, one `guide` message per guide,
  and the first `poll`;
- `guide`: plan the guide's chunks once (their own current WeCom contacts in the audience, minus whoever
  already received a group message today), then create each chunk at WeCom through the ledger:
  claim (state creating, a lease) BEFORE add_msg_template, the msgid AFTER it. A delivery that finds a
  chunk `creating` whose lease ran out does not call again: it looks for the message at WeCom
  (get_groupmsg_list_v2 by the guide, since the claim; the candidate's customers must be the chunk's)
  and adopts its msgid; only if WeCom has none is the chunk claimed again;
- `poll` (a delayed message, every POLL_SECONDS until due_at): every page of get_groupmsg_task and
  get_groupmsg_send_result (limit 1,000, by cursor) of every created chunk; figures are SET from that
  full read, never added, so a repeated or redelivered poll changes nothing. At due_at the last poll
  completes the task and puts `guide_task.completed` on the bus (outbox, in the completing transaction).

WeCom's once-a-day cap is quota, not an error: a customer it refused is `capped`, and siyu does not
plan a customer who already received one today (marks written from the polls' `sent` results).
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from chalicelib import ids
from chalicelib.domain import campaigns as campaign_rules
from chalicelib.domain import guide_tasks as rules
from chalicelib.errors import ApiError, BadRequest, NotFound
from chalicelib.ids import new_id
from chalicelib.observability import logger
from chalicelib.resources import PLAN_DLQ_ARN_ENV, SCHEDULES
from chalicelib.services import campaigns as queues
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import guide_tasks as guide_task_store
from chalicelib.storage import guides as guide_store
from chalicelib.storage import tenancy
from chalicelib.storage.models import Guide, Member, Store
from chalicelib.wechat.client import WeChatError

QUEUE = "guidetasks"
POLL_SECONDS_ENV = "SIYU_GUIDE_TASK_POLL_SECONDS"
LEASE = 120                      # seconds: longer than any add_msg_template call may take to answer
LIST_SLACK = 60                  # seconds before the claim get_groupmsg_list_v2 searches from (clock skew)
PAGE = 1000                      # WeCom's limit per results page
SAFETY = 20                      # seconds of Lambda time kept when a poll pass hands on


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _clock() -> float:
    return time.time()


def _step(name: str) -> None:
    """A seam between the ledger's steps; tests replace it to kill the worker exactly there."""


def _send(bodies: list[dict], *, delay: int = 0) -> None:
    queues.enqueue(QUEUE, bodies, delay=delay)


def _defer(body: dict, until: datetime, now: datetime) -> None:
    queues.defer(QUEUE, body, until, now)


def poll_seconds() -> int:
    return max(1, int(os.environ.get(POLL_SECONDS_ENV, "900")))


# ---- the brand's API -----------------------------------------------------------------------------

def create_task(brand_id: str, body: dict) -> dict:
    brand = tenancy.require_brand(brand_id)
    now = _now()
    spec = rules.spec(body, brand_timezone=brand.timezone, now=now)
    app_for(brand, "wecom")                                 # 404 app_not_configured: nothing to send with
    guides = _resolve_guides(brand_id, spec)
    task_id = new_id("gt", 16)
    name = f"{brand_id}.{task_id}"
    item = guide_task_store.create(brand_id, task_id, spec, guides, name, now)
    try:
        _schedule(name, spec, brand_id, task_id)
    except Exception as err:
        guide_task_store.delete(brand_id, task_id, [g.guide_id for g in guides], spec.send_at)
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code == "ValidationException":
            raise BadRequest(f"EventBridge Scheduler refused the schedule: {err}", code="invalid_schedule") from None
        logger.exception("schedule not created", extra={"brand_id": brand_id, "task_id": task_id})
        raise ApiError("the scheduler is unavailable; try again", code="scheduler_unavailable", status=503) from None
    return view(item, [])


def _resolve_guides(brand_id: str, spec: rules.TaskSpec) -> list[Guide]:
    everyone = {g.guide_id: g for g in tenancy.list_items(brand_id, Guide, "GUIDE#")}
    if spec.guide_ids:
        unknown = [g for g in spec.guide_ids if g not in everyone]
        if unknown:
            raise BadRequest(f"unknown guide(s): {', '.join(unknown[:5])}", code="unknown_guide")
        chosen = [everyone[g] for g in spec.guide_ids]
    else:
        stores = {s.store_id for s in tenancy.list_items(brand_id, Store, "STORE#")}
        unknown = [s for s in spec.store_ids if s not in stores]
        if unknown:
            raise BadRequest(f"unknown store(s): {', '.join(unknown[:5])}", code="unknown_store")
        chosen = [g for g in everyone.values() if g.store_id in spec.store_ids]
    without = [g.guide_id for g in chosen if not g.wecom_user_id]
    if spec.guide_ids and without:
        raise BadRequest(f"guide(s) without a WeCom account: {', '.join(without[:5])}", code="guide_without_wecom")
    chosen = [g for g in chosen if g.wecom_user_id]
    if not chosen:
        raise BadRequest("no guide with a WeCom account in these stores", code="no_guides")
    if len(chosen) > rules.MAX_GUIDES:
        raise BadRequest(f"at most {rules.MAX_GUIDES} guides per task", code="too_many_guides")
    return sorted(chosen, key=lambda g: g.guide_id)


def _schedule(name: str, spec: rules.TaskSpec, brand_id: str, task_id: str) -> None:
    from chalicelib import aws
    target = {"Arn": queues.queue_arn(queues.queue_url(QUEUE)), "RoleArn": os.environ[SCHEDULES.role_env],
              "Input": json.dumps({"kind": "fire", "brand_id": brand_id, "task_id": task_id}),
              "RetryPolicy": queues.SCHEDULE_RETRY}
    if os.environ.get(PLAN_DLQ_ARN_ENV):
        target["DeadLetterConfig"] = {"Arn": os.environ[PLAN_DLQ_ARN_ENV]}
    aws.client("scheduler").create_schedule(
        Name=name, GroupName=os.environ[SCHEDULES.env], ScheduleExpression=rules.schedule_expression(spec.send_at,
                                                                                                      spec.timezone),
        ScheduleExpressionTimezone=spec.timezone, FlexibleTimeWindow={"Mode": "OFF"}, Target=target,
        State="ENABLED", ActionAfterCompletion="DELETE", Description=f"siyu guide task {brand_id}/{task_id}")


def _require(brand_id: str, task_id: str):
    item = guide_task_store.get(brand_id, task_id) if ids.minted(task_id) else None
    if item is None:
        raise NotFound(f"no guide task {task_id}", code="unknown_guide_task")
    return item


def guide_view(g) -> dict:
    buckets = {b: int(getattr(g, b) or 0) for b in rules.BUCKETS}
    return {"guide_id": g.guide_id, "store_id": g.store_id, "wecom_user_id": g.wecom_user_id, "state": g.state,
            "chunks": int(g.chunks or 0), "executed": bool(g.executed),
            "contacts_targeted": sum(buckets.values()), "contacts_sent": buckets["sent"], "buckets": buckets,
            "polled_at": g.polled_at}


def view(item, guides: list) -> dict:
    spec = rules.TaskSpec.from_json(item.spec)
    buckets = {b: sum(int(getattr(g, b) or 0) for g in guides) for b in rules.BUCKETS}
    figures = rules.figures(int(item.guides_assigned or 0), sum(1 for g in guides if g.executed), buckets)
    return {"task_id": item.task_id, "state": item.state, **spec.view(), "created_at": item.created_at,
            "started_at": item.started_at, "completed_at": item.completed_at, **figures}


def get_task(brand_id: str, task_id: str) -> dict:
    item = _require(brand_id, task_id)
    return view(item, guide_task_store.guides_of(brand_id, task_id))


def task_guides(brand_id: str, task_id: str) -> dict:
    _require(brand_id, task_id)
    return {"task_id": task_id, "guides": [guide_view(g) for g in guide_task_store.guides_of(brand_id, task_id)]}


def my_tasks(brand_id: str, session: dict) -> dict:
    """The guide's tasks not yet due, newest send first, with their own figures."""
    guide_id = session["g"]
    tasks = guide_task_store.tasks_by_id(brand_id, guide_task_store.tasks_of_guide(brand_id, guide_id)[:100])
    out = []
    for task in sorted(tasks, key=lambda t: t.created_at, reverse=True):
        if task.state == "completed":
            continue
        spec = rules.TaskSpec.from_json(task.spec)
        mine = guide_task_store.guide_item(brand_id, task.task_id, guide_id)
        out.append({"task_id": task.task_id, "name": spec.name, "state": task.state, "send_at": spec.send_at,
                    "due_at": spec.due_at, "message": {"text": spec.text, "miniprogram": spec.miniprogram},
                    "mine": guide_view(mine) if mine else None})
    return {"tasks": out}


# ---- the worker ----------------------------------------------------------------------------------

def handle(body: dict, *, remaining: Callable[[], float] = lambda: 900.0) -> None:
    kind = body.get("kind")
    if kind == "fire":
        fire(body["brand_id"], body["task_id"])
    elif kind == "guide":
        run_guide(body["brand_id"], body["task_id"], body["guide_id"])
    elif kind == "poll":
        poll(body["brand_id"], body["task_id"], remaining=remaining, after=body.get("after"))
    else:
        raise ValueError(f"unknown guide task message {kind!r}")


def fire(brand_id: str, task_id: str) -> None:
    task = guide_task_store.get(brand_id, task_id)
    if task is None:
        logger.warning("fire for an unknown guide task", extra={"brand_id": brand_id, "task_id": task_id})
        return
    if task.state == "scheduled":
        guide_task_store.start(task, _now())
        task = guide_task_store.get(brand_id, task_id)
    if task.state != "running" or task.fanned_out:
        return                                      # a duplicate fire: the first one did this
    guides = guide_task_store.guides_of(brand_id, task_id)
    _send([{"kind": "guide", "brand_id": brand_id, "task_id": task_id, "guide_id": g.guide_id} for g in guides])
    _send([{"kind": "poll", "brand_id": brand_id, "task_id": task_id}], delay=min(poll_seconds(), 900))
    guide_task_store.mark_fanned_out(task)
    logger.info("guide task started", extra={"brand_id": brand_id, "task_id": task_id, "guides": len(guides)})


def _targets(brand_id: str, task_id: str, spec: rules.TaskSpec, guide_id: str, now: datetime) -> list[str]:
    """The guide's current contacts in the audience who have not received a group message today."""
    contacts = list(guide_store.contacts_of(brand_id, guide_id))
    by_member = {m: ext for ext, m in contacts if m}
    chosen = []
    keys = [(f"B#{brand_id}#M#{m}", "MEMBER") for m in by_member]
    for member in Member.batch_get(keys):
        stores = {t.store_id for t in (member.first_touch, member.last_touch) if t is not None and t.store_id}
        facts = campaign_rules.MemberFacts(member.member_id, member.joined_at, frozenset(member.tags or ()),
                                           frozenset(stores))
        if rules.in_audience(task_id, spec.audience, facts):
            chosen.append(by_member[member.member_id])
    capped = set()
    for n in range(0, len(chosen), 100):
        capped |= guide_task_store.sent_today(brand_id, chosen[n:n + 100], rules.cap_day(now, spec.timezone))
    return [ext for ext in chosen if ext not in capped]


def run_guide(brand_id: str, task_id: str, guide_id: str) -> None:
    task = guide_task_store.get(brand_id, task_id)
    guide = guide_task_store.guide_item(brand_id, task_id, guide_id)
    if task is None or guide is None or task.state != "running":
        return
    spec = rules.TaskSpec.from_json(task.spec)
    now = _now()
    body = {"kind": "guide", "brand_id": brand_id, "task_id": task_id, "guide_id": guide_id}
    if guide.state in ("pending", "planning"):
        if not guide_task_store.claim_planning(guide, _clock(), LEASE):
            # another delivery is planning this guide (or died doing so): come back after its lease
            _defer(body, datetime.fromtimestamp(float(guide.lease_until or _clock()) + 1, timezone.utc), now)
            return
        chunks = rules.chunks(_targets(brand_id, task_id, spec, guide_id, now))
        # assigned and executed count on one day, the task's send day (its schedule fires then), so the
        # leaderboard's execution rate never splits a task over two days
        send_day = rules.cap_day(campaign_rules.parse_instant(spec.send_at), spec.timezone)
        guide_task_store.plan_guide(brand_id, task_id, guide, chunks, send_day)
        guide = guide_task_store.guide_item(brand_id, task_id, guide_id)
    if guide.state != "planned":
        return
    api = api_for(app_for(tenancy.require_brand(brand_id), "wecom"))
    chunks = sorted(guide_task_store.chunks_of(brand_id, task_id, guide_id), key=lambda c: c.sk)
    for chunk in chunks:
        if chunk.state in ("created", "failed"):
            continue
        try:
            _create_chunk(api, spec, guide, chunk, chunks)
        except LeaseHeld as held:
            # another delivery is creating it (or died doing so): come back once its lease is over,
            # as a delayed message (no receive count is spent waiting)
            _defer(body, datetime.fromtimestamp(held.until, timezone.utc), _now())
            return
    guide_task_store.mark_created(guide)


class LeaseHeld(Exception):
    """Another delivery holds this chunk's lease (or died holding it): retried after the lease."""

    def __init__(self, until: float):
        super().__init__(f"chunk lease held until {until}")
        self.until = until


def _create_chunk(api, spec: rules.TaskSpec, guide, chunk, siblings: list) -> None:
    recipients = chunk.recipients.split("\n") if chunk.recipients else []
    now = _clock()
    if chunk.state == "creating":
        if float(chunk.lease_until or 0) > now:
            raise LeaseHeld(float(chunk.lease_until))
        msgid = _reconcile(api, spec, guide.wecom_user_id, recipients, float(chunk.attempt_at or now), now, siblings)
        if msgid is not None:
            logger.info("chunk reconciled", extra={"chunk": chunk.sk, "msgid": msgid})
            guide_task_store.chunk_created(chunk, msgid, [])
            return
    if not guide_task_store.claim_chunk(chunk, now, LEASE):
        raise LeaseHeld(now + LEASE)             # another delivery claimed it a moment ago
    _step("claimed")
    try:
        answer = api.call("POST", "cgi-bin/externalcontact/add_msg_template",
                          json_body=spec.wecom_body(guide.wecom_user_id, recipients))
    except WeChatError as err:
        if err.transient:
            guide_task_store.release_chunk(chunk)              # WeCom certainly did not act: claim again later
        elif err.permanent:
            guide_task_store.chunk_failed(chunk, err.errcode)  # its customers end unconfirmed; the task goes on
            logger.warning("chunk refused by WeCom", extra={"chunk": chunk.sk, "errcode": err.errcode})
            return
        raise                                       # unknown outcome: reconciled after the lease
    _step("called")
    guide_task_store.chunk_created(chunk, str(answer["msgid"]), [e for e in answer.get("fail_list") or [] if isinstance(e, str)])


def _pages(call: Callable[[str], dict], field: str) -> list[dict]:
    """Every page of a cursor-paged WeCom list."""
    rows, cursor = [], ""
    for _ in range(10_000):
        answer = call(cursor)
        rows += answer.get(field) or []
        cursor = answer.get("next_cursor") or ""
        if not cursor:
            return rows
    raise RuntimeError(f"{field}: more pages than any task can have")


def _send_list(api, msgid: str, userid: str) -> list[dict]:
    return _pages(lambda cursor: api.call("POST", "cgi-bin/externalcontact/get_groupmsg_send_result", json_body={
        "msgid": msgid, "userid": userid, "limit": PAGE, "cursor": cursor}), "send_list")


def _reconcile(api, spec: rules.TaskSpec, userid: str, recipients: list[str], claimed_at: float, now: float,
               chunks) -> str | None:
    """The msgid WeCom gave a call whose answer was lost: a message by this guide since the claim (less
    clock skew), not already another chunk's, with this task's text and exactly this chunk's customers.
    None: WeCom never made it."""
    known = {c.msgid for c in chunks if c.msgid}
    listed = _pages(lambda cursor: api.call("POST", "cgi-bin/externalcontact/get_groupmsg_list_v2", json_body={
        "chat_type": "single", "start_time": int(claimed_at) - LIST_SLACK, "end_time": int(now) + 60,
        "creator": userid, "filter_type": 2, "limit": 100, "cursor": cursor}), "group_msg_list")
    wanted = set(recipients)
    for msg in listed:
        msgid = msg.get("msgid")
        if not msgid or msgid in known or msg.get("creator") not in (None, userid):
            continue
        if spec.text and (msg.get("text") or {}).get("content") != spec.text:
            continue
        if {r.get("external_userid") for r in _send_list(api, msgid, userid)} == wanted:
            return msgid
    return None


def poll(brand_id: str, task_id: str, *, remaining: Callable[[], float] = lambda: 900.0,
         after: str | None = None) -> None:
    """Read every created chunk's results, SET the figures; before due_at come again, at it complete.
    A pass over many guides that nears the Lambda timeout hands on (`after`: the last guide polled) and
    the pass goes on in the next message; only a whole pass decides what comes next."""
    task = guide_task_store.get(brand_id, task_id)
    if task is None or task.state != "running":
        return
    spec = rules.TaskSpec.from_json(task.spec)
    now = _now()
    due = campaign_rules.parse_instant(spec.due_at)
    api = api_for(app_for(tenancy.require_brand(brand_id), "wecom"))
    guides = guide_task_store.guides_of(brand_id, task_id)                 # by guide id
    done = 0
    for guide in guides:
        if after is not None and guide.guide_id <= after:
            continue
        if done and remaining() < SAFETY:
            _send([{"kind": "poll", "brand_id": brand_id, "task_id": task_id, "after": last}])
            return
        poll_guide(api, brand_id, task_id, spec, guide, now)
        done, last = done + 1, guide.guide_id
    if now < due:
        _defer({"kind": "poll", "brand_id": brand_id, "task_id": task_id},
               min(due, now + timedelta(seconds=poll_seconds())), now)
        return
    guides = guide_task_store.guides_of(brand_id, task_id)
    figures = view(task, guides)
    final = {k: figures[k] for k in ("guides_assigned", "guides_executed", "execution_rate", "contacts_targeted",
                                     "contacts_sent", "buckets")}
    if guide_task_store.complete(task, json.dumps(final), {"brand_id": brand_id, "task_id": task_id, "name": spec.name,
                                                **final}, now):
        logger.info("guide task completed", extra={"brand_id": brand_id, "task_id": task_id, **final})


def poll_guide(api, brand_id: str, task_id: str, spec: rules.TaskSpec, guide, now: datetime) -> None:
    chunks = guide_task_store.chunks_of(brand_id, task_id, guide.guide_id)
    totals = {b: 0 for b in rules.BUCKETS}
    confirmed_all = bool(chunks)
    for chunk in chunks:
        recipients = chunk.recipients.split("\n") if chunk.recipients else []
        if chunk.state != "created":
            confirmed_all = False
            totals["unconfirmed"] += len(recipients)
            continue
        rows = _pages(lambda cursor: api.call("POST", "cgi-bin/externalcontact/get_groupmsg_task", json_body={
            "msgid": chunk.msgid, "limit": PAGE, "cursor": cursor}), "task_list")
        status = next((int(r.get("status") or 0) for r in rows if r.get("userid") == guide.wecom_user_id), None)
        result = rules.chunk_result(recipients, (chunk.refused or "").split("\n") if chunk.refused else [], status,
                                    _send_list(api, chunk.msgid, guide.wecom_user_id))
        if result.sent_ids and result.buckets["sent"] != int(chunk.sent or 0):
            guide_task_store.mark_sent_today(brand_id, result.sent_ids, rules.cap_day(now, spec.timezone), now)
        guide_task_store.set_chunk_result(chunk, result.confirmed, result.buckets)
        confirmed_all = confirmed_all and result.confirmed
        for b, n in result.buckets.items():
            totals[b] += n
    send_day = rules.cap_day(campaign_rules.parse_instant(spec.send_at), spec.timezone)
    guide_task_store.set_guide_result(brand_id, task_id, guide, confirmed_all, totals, send_day, now)
