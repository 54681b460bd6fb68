"""Head-office task storage: the task, each guide's part, the chunk ledger, the daily-cap marks.

Keys: see models (guide tasks section). A task's guides and chunks share one partition
(`B#<brand>#GT#<task>`), read with one Query; the chunk ledger's state moves only by conditional
updates, so two deliveries of one guide's message never both call WeCom for one chunk.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.domain import guide_tasks as rules
from chalicelib.storage import scoreboard
from chalicelib.storage.guides import TASKS_BY_DAY
from chalicelib.storage.members import outbox_item
from chalicelib.storage.models import (GuideTask, GuideTaskChunk, GuideTaskGuide, GuideTaskPointer, Item,
                                       WecomDaily)
from chalicelib.storage.tx import Tx, refused

DAILY_RETENTION = timedelta(days=3)


def task_pk(brand_id: str, task_id: str) -> str:
    return f"B#{brand_id}#GT#{task_id}"


def create(brand_id: str, task_id: str, spec: rules.TaskSpec, guides: list, schedule_name: str,
           now: datetime) -> GuideTask:
    """The guides' items and pointers first (batch), then the task: a task that exists is complete."""
    with Item.batch_write() as batch:
        for g in guides:
            batch.save(GuideTaskGuide(task_pk(brand_id, task_id), f"G#{g.guide_id}", guide_id=g.guide_id,
                                      store_id=g.store_id, wecom_user_id=g.wecom_user_id, state="pending"))
            batch.save(GuideTaskPointer(f"B#{brand_id}#GUIDETASKS#{g.guide_id}", f"{spec.send_at}#{task_id}",
                                        task_id=task_id))
    task = GuideTask(f"B#{brand_id}", f"GTASK#{task_id}", brand_id=brand_id, task_id=task_id, name=spec.name,
                     spec=spec.to_json(), state="scheduled", schedule_name=schedule_name,
                     guides_assigned=len(guides), created_at=now.isoformat(),
                     # the brand's tasks newest first (GET /admin/{brand}/guide-tasks: services.task_list)
                     gsi1pk=f"B#{brand_id}#GTASKS", gsi1sk=f"{now.isoformat()}#{task_id}")
    task.save(condition=GuideTask.pk.does_not_exist())
    return task


def delete(brand_id: str, task_id: str, guide_ids: list[str], send_at: str) -> None:
    with Item.batch_write() as batch:
        batch.delete(GuideTask(f"B#{brand_id}", f"GTASK#{task_id}"))
        for guide_id in guide_ids:
            batch.delete(GuideTaskGuide(task_pk(brand_id, task_id), f"G#{guide_id}"))
            batch.delete(GuideTaskPointer(f"B#{brand_id}#GUIDETASKS#{guide_id}", f"{send_at}#{task_id}"))


def get(brand_id: str, task_id: str) -> GuideTask | None:
    try:
        return GuideTask.get(f"B#{brand_id}", f"GTASK#{task_id}", consistent_read=True)
    except DoesNotExist:
        return None


def guides_of(brand_id: str, task_id: str) -> list[GuideTaskGuide]:
    return list(GuideTaskGuide.query(task_pk(brand_id, task_id), GuideTaskGuide.sk.startswith("G#"),
                                     consistent_read=True))


def guide_item(brand_id: str, task_id: str, guide_id: str) -> GuideTaskGuide | None:
    try:
        return GuideTaskGuide.get(task_pk(brand_id, task_id), f"G#{guide_id}", consistent_read=True)
    except DoesNotExist:
        return None


def chunks_of(brand_id: str, task_id: str, guide_id: str) -> list[GuideTaskChunk]:
    return list(GuideTaskChunk.query(task_pk(brand_id, task_id), GuideTaskChunk.sk.startswith(f"C#{guide_id}#"),
                                     consistent_read=True))


def tasks_of_guide(brand_id: str, guide_id: str) -> list[str]:
    return [p.task_id for p in GuideTaskPointer.query(f"B#{brand_id}#GUIDETASKS#{guide_id}", scan_index_forward=False)]


def tasks_by_id(brand_id: str, task_ids: list[str]) -> list[GuideTask]:
    return list(GuideTask.batch_get([(f"B#{brand_id}", f"GTASK#{t}") for t in task_ids])) if task_ids else []


def start(task: GuideTask, now: datetime) -> bool:
    """scheduled -> running, once (a duplicate fire finds it running)."""
    try:
        task.update(actions=[GuideTask.state.set("running"), GuideTask.started_at.set(now.isoformat())],
                    condition=GuideTask.state == "scheduled")
        return True
    except UpdateError as err:
        if refused(err):
            return False
        raise


def mark_fanned_out(task: GuideTask) -> None:
    task.update(actions=[GuideTask.fanned_out.set(True)])


# ---- planning a guide's chunks -------------------------------------------------------------------

def claim_planning(guide: GuideTaskGuide, now: float, lease: float) -> bool:
    """pending (or planning, its planner's lease run out) -> planning: one planner writes the chunks."""
    condition = (GuideTaskGuide.state == "pending") | (
        (GuideTaskGuide.state == "planning") & (GuideTaskGuide.lease_until < now))
    try:
        guide.update(actions=[GuideTaskGuide.state.set("planning"), GuideTaskGuide.lease_until.set(now + lease)],
                     condition=condition)
        return True
    except UpdateError as err:
        if refused(err):
            return False
        raise


def plan_guide(brand_id: str, task_id: str, guide: GuideTaskGuide, chunks: list[list[str]], send_day: str) -> bool:
    """Store the guide's chunks, then mark the guide planned and count the task as assigned to them (the
    leaderboard's tasks_assigned) in one transaction conditional on `planning`. Only the planning lease's
    holder writes chunks, and nothing calls WeCom for a chunk until its guide is planned, so no chunk is
    overwritten once it may have been claimed. False: planned already (by a planner whose lease ran out)."""
    with Item.batch_write() as batch:
        for n, recipients in enumerate(chunks):
            batch.save(GuideTaskChunk(task_pk(brand_id, task_id), f"C#{guide.guide_id}#{n:04d}",
                                      guide_id=guide.guide_id, state="planned", recipients="\n".join(recipients)))
    tx = Tx()
    tx.update("guide", GuideTaskGuide(guide.pk, guide.sk),
              [GuideTaskGuide.state.set("planned"), GuideTaskGuide.chunks.set(len(chunks)),
               GuideTaskGuide.unconfirmed.set(sum(len(c) for c in chunks))],
              condition=GuideTaskGuide.state == "planning")
    scoreboard.add(tx, brand_id, [(TASKS_BY_DAY, send_day, guide.guide_id, {"tasks_assigned": 1})],
                   scoreboard.shard_of(task_id))
    return not tx.attempt()


def mark_created(guide: GuideTaskGuide) -> None:
    guide.update(actions=[GuideTaskGuide.state.set("created")], condition=GuideTaskGuide.state == "planned")


# ---- the chunk ledger ----------------------------------------------------------------------------

def claim_chunk(chunk: GuideTaskChunk, now: float, lease: float) -> bool:
    """planned (or creating with its claimant's lease run out, after reconciliation found nothing at
    WeCom) -> creating, with a lease: written BEFORE add_msg_template is called."""
    condition = (GuideTaskChunk.state == "planned") | (
        (GuideTaskChunk.state == "creating") & (GuideTaskChunk.lease_until < now))
    try:
        chunk.update(actions=[GuideTaskChunk.state.set("creating"), GuideTaskChunk.attempt_at.set(now),
                              GuideTaskChunk.lease_until.set(now + lease), GuideTaskChunk.attempts.add(1)],
                     condition=condition)
        return True
    except UpdateError as err:
        if refused(err):
            return False
        raise


def chunk_created(chunk: GuideTaskChunk, msgid: str, refused: list[str]) -> None:
    """creating -> created with WeCom's msgid: the ledger now says the call happened."""
    try:
        chunk.update(actions=[GuideTaskChunk.state.set("created"), GuideTaskChunk.msgid.set(msgid),
                              GuideTaskChunk.refused.set(rules.refused_text(refused))],
                     condition=GuideTaskChunk.state == "creating")
    except UpdateError as err:
        if not refused(err):
            raise


def release_chunk(chunk: GuideTaskChunk) -> None:
    """creating -> planned: WeCom certainly did not act (the call was proven not sent)."""
    try:
        chunk.update(actions=[GuideTaskChunk.state.set("planned")], condition=GuideTaskChunk.state == "creating")
    except UpdateError as err:
        if not refused(err):
            raise


def chunk_failed(chunk: GuideTaskChunk, errcode: int) -> None:
    chunk.update(actions=[GuideTaskChunk.state.set("failed"), GuideTaskChunk.errcode.set(errcode)],
                 condition=GuideTaskChunk.state == "creating")


def set_chunk_result(chunk: GuideTaskChunk, confirmed: bool, buckets: dict[str, int]) -> None:
    """SET (never ADD) the chunk's figures from a full read of WeCom's results: a repeated poll or a
    redelivered message writes the same values again."""
    chunk.update(actions=[GuideTaskChunk.confirmed.set(confirmed)]
                 + [getattr(GuideTaskChunk, b).set(n) for b, n in buckets.items()])


def set_guide_result(brand_id: str, task_id: str, guide: GuideTaskGuide, executed: bool, buckets: dict[str, int],
                     send_day: str, now: datetime) -> None:
    """SET the guide's figures; the first time the guide is seen executed, also ADD tasks_executed on
    the leaderboard's counters, in the same transaction (conditional on not executed yet)."""
    actions = [getattr(GuideTaskGuide, b).set(n) for b, n in buckets.items()]
    actions.append(GuideTaskGuide.polled_at.set(now.isoformat()))
    if executed and not guide.executed:
        def build() -> Tx:
            tx = Tx()
            tx.update("guide", GuideTaskGuide(guide.pk, guide.sk), actions + [GuideTaskGuide.executed.set(True)],
                      condition=GuideTaskGuide.executed == False)  # noqa: E712 - a DynamoDB condition
            scoreboard.add(tx, brand_id, [(TASKS_BY_DAY, send_day, guide.guide_id, {"tasks_executed": 1})],
                           scoreboard.shard_of(task_id))
            return tx
        from chalicelib.storage.tx import retrying
        if not retrying(build):
            return
    GuideTaskGuide(guide.pk, guide.sk).update(actions=actions)


def complete(task: GuideTask, final: str, event: dict, now: datetime) -> bool:
    """running -> completed with `guide_task.completed` in the outbox, once."""
    tx = Tx()
    tx.update("task", GuideTask(task.pk, task.sk), [GuideTask.state.set("completed"),
                                                      GuideTask.completed_at.set(now.isoformat()),
                                                      GuideTask.final.set(final)],
              condition=GuideTask.state == "running")
    tx.save("outbox", outbox_item("event", "guide_task.completed", task.brand_id, event, now))
    return not tx.attempt()


# ---- the once-a-day cap --------------------------------------------------------------------------

def mark_sent_today(brand_id: str, external_userids: list[str], day: str, now: datetime) -> None:
    with Item.batch_write() as batch:
        for ext in external_userids:
            batch.save(WecomDaily(f"B#{brand_id}#WDAY#{ext}", day, n=1, expires_at=now + DAILY_RETENTION))


def sent_today(brand_id: str, external_userids: list[str], day: str) -> set[str]:
    keys = [(f"B#{brand_id}#WDAY#{ext}", day) for ext in external_userids]
    return {item.pk.rsplit("#", 1)[1] for item in WecomDaily.batch_get(keys)} if keys else set()


__all__ = ["create", "get", "guides_of", "chunks_of", "plan_guide", "claim_chunk", "chunk_created", "complete"]
