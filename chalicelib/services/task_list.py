"""The brand's head-office tasks to guides, newest first: `GET /admin/{brand}/guide-tasks?limit&cursor`.

Each task item (`B#<brand>` / `GTASK#<task>`) carries gsi1 keys `B#<brand>#GTASKS` / `<created_at>#<task_id>`
(written with the task: storage.guide_tasks.create), so a page is one Query, newest first, never a
scan. A task's figures (execution rate, buckets) stay with GET .../guide-tasks/{id}, which reads its
guides. The cursor is the last row's sort key: a hand-made one can only move within this brand's
tasks, so it is checked for shape and nothing more.
"""
from __future__ import annotations

import re

from chalicelib.domain import guide_tasks as rules
from chalicelib.services.console_api import _page
from chalicelib.storage import tenancy
from chalicelib.storage.models import GuideTask

_CURSOR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,15}\+00:00#gt_[a-z2-7]{1,40}")


def row(task: GuideTask) -> dict:
    spec = rules.TaskSpec.from_json(task.spec).view()
    return {"task_id": task.task_id, "name": task.name, "state": task.state,
            "guides_assigned": int(task.guides_assigned or 0), "send_at": spec.get("send_at"),
            "due_at": spec.get("due_at"), "created_at": task.created_at, "started_at": task.started_at,
            "completed_at": task.completed_at}


def list_tasks(brand_id: str, params: dict | None) -> dict:
    """`{tasks: [...], next_cursor}`, newest first."""
    tenancy.require_brand(brand_id)
    limit, cursor = _page(params or {}, {"limit", "cursor"}, _CURSOR)
    pk = f"B#{brand_id}#GTASKS"
    start = None
    if cursor:      # DynamoDB's ExclusiveStartKey for the index: the row's table key and its index key
        task_id = cursor.split("#", 1)[1]
        start = {"pk": {"S": f"B#{brand_id}"}, "sk": {"S": f"GTASK#{task_id}"},
                 "gsi1pk": {"S": pk}, "gsi1sk": {"S": cursor}}
    page = GuideTask.gsi1.query(pk, scan_index_forward=False, limit=limit, page_size=limit, last_evaluated_key=start)
    rows = [row(t) for t in page if isinstance(t, GuideTask)]
    last = page.last_evaluated_key
    return {"tasks": rows, "next_cursor": last["gsi1sk"]["S"] if last else None}
