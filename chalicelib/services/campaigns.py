"""Campaigns: create, read, pause, resume, cancel; the schedule that fires them; subscribe credits.

A campaign is stored, then given one EventBridge Scheduler schedule (one-time `at()` deleted after
it fires, or a recurring `cron()` in the campaign's time zone) whose target is the plan queue.
The planner (services.planning) and the sender (services.sending) do the rest; this module also
holds what they share: queueing, parking while paused, and completing a run.

AWS cost of a marketer's action: create = 1 TransactWriteItems + 1 CreateSchedule; pause/resume/
cancel = 1 GetItem + 1 TransactWriteItems (+ resume: 1 Query and the re-queued messages; cancel:
1 DeleteSchedule). A subscription record is 1 TransactWriteItems (+1 BatchGetItem to know the member,
+1 TransactWriteItems when the shopper joins there, +1 Query for the answer).
"""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone

from chalicelib import aws, untrusted
from chalicelib.domain import campaigns as rules
from chalicelib.domain import conversion as conversion_rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.errors import ApiError, BadRequest, NotFound
from chalicelib.ids import new_id
from chalicelib.observability import logger
from chalicelib.resources import PLAN_DLQ_ARN_ENV, SCHEDULES, queue
from chalicelib.services import onboarding
from chalicelib.storage import campaigns as campaign_store
from chalicelib.storage import conversion
from chalicelib.storage import members, tenancy

SCHEDULE_RETRY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 20}
MAX_DELAY = 900                     # SQS DelaySeconds ceiling; longer waits hop
FIRE_TIME = "<aws.scheduler.scheduled-time>"     # Scheduler fills this context attribute in per fire


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- queues ----------------------------------------------------------------------------------

def queue_url(key: str) -> str:
    return os.environ[queue(key).env]


def enqueue(key: str, bodies: list[dict], *, delay: int = 0) -> None:
    """SendMessageBatch in groups of 10 and under SQS's 256 KB per request; raises if any entry is refused."""
    sqs = aws.client("sqs")
    url = queue_url(key)
    group: list[str] = []
    size = 0

    def flush() -> None:
        if not group:
            return
        entries = [{"Id": str(i), "MessageBody": text, **({"DelaySeconds": delay} if delay else {})}
                   for i, text in enumerate(group)]
        result = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if result.get("Failed"):
            raise RuntimeError(f"SQS refused {len(result['Failed'])} messages to {key}: {result['Failed'][:3]}")
        group.clear()

    for body in bodies:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(group) == 10 or size + len(text.encode()) > 240_000:
            flush()
            size = 0
        group.append(text)
        size += len(text.encode())
    flush()


def defer(key: str, body: dict, until: datetime, now: datetime) -> None:
    """Put the message back to come again at `until` (in hops of at most 15 minutes)."""
    enqueue(key, [body], delay=max(1, min(MAX_DELAY, int((until - now).total_seconds()) + 1)))


# ---- schedules -------------------------------------------------------------------------------

def schedule_name(brand_id: str, campaign_id: str) -> str:
    return f"{brand_id}.{campaign_id}"          # <= 64 chars of [0-9a-zA-Z-_.]


def queue_arn(url: str) -> str:
    """An SQS queue's ARN from its URL (`https://sqs.<region>.<domain>/<account>/<name>`), so the API
    needs neither sqs:GetQueueAttributes nor another environment variable."""
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:{aws.partition()}:sqs:{aws.region()}:{account}:{name}"


def fire_input(brand_id: str, campaign_id: str) -> dict:
    return {"kind": "fire", "brand_id": brand_id, "campaign_id": campaign_id, "scheduled_time": FIRE_TIME}


def create_schedule(name: str, spec: rules.Spec, brand_id: str, campaign_id: str) -> None:
    target = {"Arn": queue_arn(queue_url(SCHEDULES.target_queue)), "RoleArn": os.environ[SCHEDULES.role_env],
              "Input": json.dumps(fire_input(brand_id, campaign_id)), "RetryPolicy": SCHEDULE_RETRY}
    if os.environ.get(PLAN_DLQ_ARN_ENV):
        target["DeadLetterConfig"] = {"Arn": os.environ[PLAN_DLQ_ARN_ENV]}
    kwargs = dict(Name=name, GroupName=os.environ[SCHEDULES.env], ScheduleExpression=spec.schedule.expression(),
                  ScheduleExpressionTimezone=spec.schedule.timezone, FlexibleTimeWindow={"Mode": "OFF"},
                  Target=target, State="ENABLED", Description=f"siyu campaign {brand_id}/{campaign_id}")
    if not spec.schedule.recurring:
        kwargs["ActionAfterCompletion"] = "DELETE"
    aws.client("scheduler").create_schedule(**kwargs)


def delete_schedule(name: str) -> None:
    scheduler = aws.client("scheduler")
    try:
        scheduler.delete_schedule(Name=name, GroupName=os.environ[SCHEDULES.env])
    except scheduler.exceptions.ResourceNotFoundException:
        pass                                    # a one-time schedule deletes itself after firing


# ---- the marketer's API ----------------------------------------------------------------------

def _require(brand_id: str, campaign_id: str, *, consistent: bool = True):
    item = campaign_store.get(brand_id, campaign_id, consistent=consistent) if isinstance(campaign_id, str) else None
    if item is None:
        raise NotFound(f"no campaign {campaign_id}", code="unknown_campaign")
    return item


def create_campaign(brand_id: str, body: dict) -> dict:
    """Validate, store (state scheduled) and schedule a campaign. 4xx for what cannot be right:
    past `at`, bad cron or time zone, unknown channel, unknown coupon template."""
    brand = tenancy.require_brand(brand_id)
    now = _now()
    spec = rules.spec(body, brand_timezone=brand.timezone, now=now)
    checks = None
    if spec.coupon_template_id:
        from chalicelib.storage.coupons import template_exists_check
        checks = template_exists_check(brand_id, spec.coupon_template_id)
    campaign_id = new_id("cmp", 16)
    name = schedule_name(brand_id, campaign_id)
    item = campaign_store.create(brand_id, campaign_id, spec, name, now, extra_checks=checks)
    try:
        create_schedule(name, spec, brand_id, campaign_id)
    except Exception as err:
        campaign_store.delete(brand_id, campaign_id)
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code == "ValidationException":
            raise BadRequest(f"EventBridge Scheduler refused the schedule: {err}", code="invalid_schedule") from None
        logger.exception("schedule not created", extra={"brand_id": brand_id, "campaign_id": campaign_id})
        raise ApiError("the scheduler is unavailable; try again", code="scheduler_unavailable", status=503) from None
    logger.info("campaign created", extra={"brand_id": brand_id, "campaign_id": campaign_id,
                                           "schedule": spec.schedule.expression()})
    return view(item)


def view(item) -> dict:
    spec = rules.Spec.from_json(item.spec)
    out = {"campaign_id": item.campaign_id, "brand_id": item.brand_id, "name": item.name, "state": item.state,
           **{k: v for k, v in spec.view().items() if k != "name"}, "created_at": item.created_at,
           "updated_at": item.updated_at, "run": None, "stats": rules.stats_view(0, {})}
    out["stats"].update(conversion_rules.stats_view(out["stats"], conversion_rules.no_totals()))
    out["schedule"]["name"] = item.schedule_name
    if item.current_run:
        run, shards = campaign_store.run_items(item.brand_id, item.campaign_id, item.current_run)
        targeted = sum(int(s.targeted or 0) for s in shards)
        out["stats"] = rules.stats_view(targeted, campaign_store.tallies(item.brand_id, item.campaign_id, item.current_run))
        out["stats"].update(conversion_rules.stats_view(out["stats"], conversion.totals(
            item.brand_id, item.campaign_id, item.current_run)))
        if run is not None:
            out["run"] = {"run_id": run.run_id or run.sk.removeprefix("RUN#"), "started_at": run.started_at, "completed_at": run.completed_at,
                          "planned": int(run.shards_done or 0) >= AUDIENCE_SHARDS, "runs": int(item.runs or 0)}
    return out


def get_campaign(brand_id: str, campaign_id: str) -> dict:
    return view(_require(brand_id, campaign_id, consistent=True))


def list_campaigns(brand_id: str) -> list[dict]:
    tenancy.require_brand(brand_id)
    return [{"campaign_id": c.campaign_id, "name": c.name, "state": c.state, "created_at": c.created_at}
            for c in campaign_store.list_for_brand(brand_id)]


def _started(item) -> bool:
    if not item.current_run:
        return False
    run = campaign_store.get_run(item.brand_id, item.campaign_id, item.current_run)
    return run is not None and run.state != "completed"


def act(brand_id: str, campaign_id: str, action: str) -> dict:
    """pause | resume | cancel; 409 invalid_transition when the campaign's state does not allow it.
    Pause takes effect at the next chunk a sender starts (or within a second inside one); resume
    re-queues what was set aside while paused; cancel also deletes the schedule."""
    tenancy.require_brand(brand_id)
    for _attempt in range(5):
        item = _require(brand_id, campaign_id)
        new_state = rules.transition(item.state, action, started=_started(item))
        event = None
        if action == "cancel":
            event = ("campaign.cancelled", {"brand_id": brand_id, "campaign_id": campaign_id, "from": item.state})
        if campaign_store.set_state(item, new_state, _now(), event=event):
            break
    else:
        raise ApiError("the campaign kept changing; try again", code="busy", status=409)
    if action == "resume":
        requeue_parked(brand_id, campaign_id)
    elif action == "cancel":
        delete_schedule(item.schedule_name)
        campaign_store.unpark(campaign_store.parked(brand_id, campaign_id))
    logger.info(f"campaign {action}", extra={"brand_id": brand_id, "campaign_id": campaign_id, "state": new_state})
    return get_campaign(brand_id, campaign_id)


def requeue_parked(brand_id: str, campaign_id: str) -> int:
    """Send what was parked while paused back to its queue, then forget it. Sending twice is harmless
    (the ledger and the planner's leases make every message idempotent); losing one is not, so the
    parked item is deleted only after its message is queued."""
    items = campaign_store.parked(brand_id, campaign_id)
    by_queue: dict[str, list[dict]] = {}
    for item in items:
        by_queue.setdefault(item.queue, []).append(json.loads(item.body))
    for key, bodies in by_queue.items():
        enqueue(key, bodies)
    campaign_store.unpark(items)
    return len(items)


def deliveries(brand_id: str, campaign_id: str, query: dict) -> dict:
    """The outcomes of the current run, page by page: who was sent, skipped (and why), failed or
    held out. A recipient appears once its outcome is recorded (claims in flight do not)."""
    item = _require(brand_id, campaign_id, consistent=False)
    state = query.get("state")
    if state is not None and state not in ("sent", "skipped", "failed", "held_out"):
        raise BadRequest("state must be one of sent, skipped, failed, held_out", code="invalid_state")
    try:
        limit_text = str(query.get("limit", "100"))
        if not (limit_text.isascii() and limit_text.isdigit()):       # int() also reads '٢' and ' 5 '
            raise ValueError(limit_text)
        limit = min(max(int(limit_text), 1), 500)
        cursor = (untrusted.loads(base64.urlsafe_b64decode(query["cursor"].encode()), what="cursor",
                                  code="invalid_cursor") if query.get("cursor") else None)
    except (ValueError, TypeError):
        raise BadRequest("limit must be a number and cursor the next_cursor of a previous page",
                         code="invalid_cursor") from None
    if not item.current_run:
        return {"deliveries": [], "next_cursor": None}
    ledger = campaign_store.Ledger(brand_id, campaign_id, item.current_run)
    if cursor is not None and not ledger.valid_cursor(cursor):
        raise BadRequest("cursor is not a next_cursor of this campaign's deliveries", code="invalid_cursor")
    entries, next_cursor = ledger.entries(state=state, cursor=cursor, limit=limit)
    return {"deliveries": entries,
            "next_cursor": base64.urlsafe_b64encode(json.dumps(next_cursor).encode()).decode() if next_cursor else None}


# ---- completing a run ------------------------------------------------------------------------

def check_completion(brand_id: str, campaign_id: str, run_id: str) -> bool:
    """Complete the run if planning is done and every targeted recipient has a final ledger entry.
    Any worker may call this after its work; the run's conditional update makes it happen once."""
    run = campaign_store.get_run(brand_id, campaign_id, run_id)
    if run is None or run.state == "completed" or int(run.shards_done or 0) < AUDIENCE_SHARDS:
        return False
    stats = rules.stats_view(int(run.targeted or 0), campaign_store.tallies(brand_id, campaign_id, run_id))
    if stats["done"] < stats["targeted"]:
        return False
    for _attempt in range(5):
        campaign = campaign_store.get(brand_id, campaign_id, consistent=True)
        if campaign is None:
            return False
        if campaign_store.complete_run(campaign, run_id, {k: v for k, v in stats.items() if k != "done"}, _now()):
            logger.info("campaign run completed", extra={"brand_id": brand_id, "campaign_id": campaign_id,
                                                         "run_id": run_id, "sent": stats["sent"]})
            return True
        run = campaign_store.get_run(brand_id, campaign_id, run_id)
        if run is None or run.state == "completed":
            return False
    return False


# ---- subscribe credits -----------------------------------------------------------------------
# Credits are WeChat's: granted to an openid for a template. They are kept by openid, which names at
# most one member (identity links are never re-pointed), so they are per member and template; a
# credit recorded before its shopper became a member is kept and counts as soon as the member exists
# (the sender looks credits up by the member's mini-program openid).

def subscribe_from_app(brand_id: str, session: dict, body: dict) -> dict:
    """What `wx.requestSubscribeMessage` answered, reported by the mini-program. A shopper who never
    scanned a code becomes a member here (source mini_program), so the credits can ever be used."""
    changes = rules.subscription_request(body)
    openid = session["o"]
    now = _now()
    member_id = onboarding.join_from_mini_program(brand_id, session, now=now)
    campaign_store.record_subscriptions(brand_id, openid, changes, source="api", now=now)
    return {"member_id": member_id, "openid": openid, "credits": campaign_store.credits_of(brand_id, openid)}


def my_subscriptions(brand_id: str, session: dict) -> dict:
    openid = session["o"]
    return {"member_id": members.find_member_id(brand_id, "mp", openid), "openid": openid,
            "credits": campaign_store.credits_of(brand_id, openid)}


def subscribe_from_callback(brand_id: str, openid: str, changes: rules.SubscriptionChanges, *, inbound: str,
                            now: datetime) -> bool:
    """A subscribe_msg_popup_event / subscribe_msg_change_event; False for a retry already applied."""
    applied = campaign_store.record_subscriptions(brand_id, openid, changes, source="push", now=now, inbound=inbound)
    if applied:
        logger.info("subscriptions recorded", extra={"brand_id": brand_id, "accepted": len(changes.accepted),
                                                     "rejected": len(changes.rejected),
                                                     "revoked": len(changes.revoked)})
    return applied
