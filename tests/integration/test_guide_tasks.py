"""Head-office tasks to guides (issue 11 §4): a task to two stores' guides where some confirm and some
do not; the execution rate and per-guide figures; WeCom's caps as buckets; duplicate fires, redelivered
messages and a worker killed at each step of the ledger creating nothing twice at WeCom."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from chalicelib.services import guide_tasks
from tests.integration.test_guide_workbench import as_guide, guide_session, second_guide, wecom_event


# tasks count on their send day (an hour ahead: tomorrow, in the brand's zone, late in its evening)
AROUND_TODAY = {"from": (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d"),
                "to": (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%d")}


def _at(minutes: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sim(stack, method: str, path: str, body=None):
    r = requests.request(method, f"{stack.wechat_url}/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def sim_tasks(stack, text: str) -> list[dict]:
    """The group messages created at WeCom whose text is `text` (each test's texts are its own)."""
    return [t for t in sim(stack, "GET", "__sim/wecom/tasks") if (t["text"] or {}).get("content") == text]


def new_task(brand, text: str, **fields) -> dict:
    body = {"name": f"task {text}", "message": {"text": text}, "send_at": _at(60), "due_at": _at(60 * 24),
            **fields}
    r = brand.admin("POST", "/guide-tasks", body)
    assert r.status_code == 201, r.text
    return r.json()


def three_guides(brand) -> None:
    """li (g1, sz): wm_1..3; wang (g2, sh): wm_4, wm_5; zhao (g3, sh): wm_6, wm_7."""
    second_guide(brand)
    r = brand.admin("POST", "/guides", {"guide_id": "g3", "store_id": "sh", "name": "Zhao", "wecom_user_id": "zhao"})
    assert r.status_code == 201, r.text
    for n in (1, 2, 3):
        wecom_event(brand, "add", "li", f"wm_{n}", state="S1")
    for n in (4, 5):
        wecom_event(brand, "add", "wang", f"wm_{n}", state="S3")
    for n in (6, 7):
        wecom_event(brand, "add", "zhao", f"wm_{n}")


def test_a_task_to_two_stores_where_some_guides_confirm(brand, stack, bus, monkeypatch):
    three_guides(brand)
    corp = brand.app("wecom")["corp_id"]
    # earlier today: zhao's task A reached wm_6 (siyu saw it sent), and someone at head office sent wm_5 a
    # group message from WeCom's own console (siyu never saw it); wm_4 removed wang on their phone and
    # WeCom's callback has not arrived yet
    zhao = guide_session(brand, "zhao")
    wm_6 = brand.member(external_userid="wm_6")["member_id"]
    assert as_guide(brand, zhao, "POST", f"/me/members/{wm_6}/tags", {"add": ["vip"]}).status_code == 200
    text_a, text_b = f"A {brand.brand_id}", f"B {brand.brand_id}"
    a = new_task(brand, text_a, guide_ids=["g3"], audience={"tags_any": ["vip"]})
    stack.scheduler.fire(f"{brand.brand_id}.{a['task_id']}")
    stack.pump.idle()
    [task_a] = sim_tasks(stack, text_a)
    assert task_a["sender"] == "zhao" and task_a["external_userid"] == ["wm_6"]
    sim(stack, "POST", "__sim/wecom/confirm", {"userid": "zhao", "msgid": task_a["msgid"]})
    guide_tasks.poll(brand.brand_id, a["task_id"])
    token = sim(stack, "GET", f"cgi-bin/gettoken?corpid={corp}&corpsecret=wecom-secret")["access_token"]
    console = sim(stack, "POST", f"cgi-bin/externalcontact/add_msg_template?access_token={token}",
                  {"chat_type": "single", "sender": "wang", "external_userid": ["wm_5"], "text": {"content": "console"}})
    sim(stack, "POST", "__sim/wecom/confirm", {"userid": "wang", "msgid": console["msgid"]})
    sim(stack, "POST", "__sim/wecom/removed", {"userid": "wang", "external_userid": "wm_4"})

    b = new_task(brand, text_b, store_ids=["sz", "sh"])
    assert (b["state"], b["guides_assigned"], b["guides_executed"]) == ("scheduled", 3, 0)
    stack.scheduler.fire(f"{brand.brand_id}.{b['task_id']}", times=2)        # Scheduler is at-least-once
    stack.pump.idle()
    created = {t["sender"]: t for t in sim_tasks(stack, text_b)}
    assert {s: t["external_userid"] for s, t in created.items()} == {
        "li": ["wm_1", "wm_2", "wm_3"], "wang": ["wm_4", "wm_5"], "zhao": ["wm_7"]}   # wm_6: today's one is spent
    for guide_id in ("g1", "g2", "g3"):                                     # redelivered guide messages
        guide_tasks.handle({"kind": "guide", "brand_id": brand.brand_id, "task_id": b["task_id"], "guide_id": guide_id})
    assert len(sim_tasks(stack, text_b)) == 3

    mine = as_guide(brand, zhao, "GET", "/me/tasks").json()["tasks"]
    assert [(t["task_id"], t["state"], t["mine"]["contacts_targeted"]) for t in mine] == [
        (b["task_id"], "running", 1), (a["task_id"], "running", 1)]
    for userid in ("li", "wang"):                                           # zhao never confirms
        sim(stack, "POST", "__sim/wecom/confirm", {"userid": userid, "msgid": created[userid]["msgid"]})
    guide_tasks.poll(brand.brand_id, b["task_id"])
    first = brand.admin("GET", f"/guide-tasks/{b['task_id']}").json()
    guide_tasks.poll(brand.brand_id, b["task_id"])                          # a redelivered poll
    view = brand.admin("GET", f"/guide-tasks/{b['task_id']}").json()
    assert view == first
    assert {k: view[k] for k in ("state", "guides_assigned", "guides_executed", "execution_rate", "contacts_targeted",
                                 "contacts_sent", "buckets")} == {
        "state": "running", "guides_assigned": 3, "guides_executed": 2, "execution_rate": 0.6667,
        "contacts_targeted": 6, "contacts_sent": 3,
        "buckets": {"sent": 3, "capped": 1, "not_contact": 1, "unconfirmed": 1}}
    per_guide = {g["guide_id"]: (g["executed"], g["contacts_targeted"], g["buckets"])
                 for g in brand.admin("GET", f"/guide-tasks/{b['task_id']}/guides").json()["guides"]}
    assert per_guide == {
        "g1": (True, 3, {"sent": 3, "capped": 0, "not_contact": 0, "unconfirmed": 0}),
        "g2": (True, 2, {"sent": 0, "capped": 1, "not_contact": 1, "unconfirmed": 0}),
        "g3": (False, 1, {"sent": 0, "capped": 0, "not_contact": 0, "unconfirmed": 1})}

    # a pass that runs out of Lambda time hands on after the guide it finished, and completes nothing
    handed: list[dict] = []
    monkeypatch.setattr(guide_tasks, "_send", lambda bodies, delay=0: handed.extend(bodies))
    due = datetime.fromisoformat(view["due_at"].replace("Z", "+00:00")) + timedelta(seconds=1)
    monkeypatch.setattr(guide_tasks, "_now", lambda: due)
    guide_tasks.handle({"kind": "poll", "brand_id": brand.brand_id, "task_id": b["task_id"]}, remaining=lambda: 0)
    assert handed == [{"kind": "poll", "brand_id": brand.brand_id, "task_id": b["task_id"], "after": "g1"}]
    guide_tasks.handle(handed[0], remaining=lambda: 0)
    assert handed[1]["after"] == "g2"
    assert brand.admin("GET", f"/guide-tasks/{b['task_id']}").json()["state"] == "running"

    # due: the last poll completes the task once and announces it
    guide_tasks.handle(handed[1])                                       # the pass's last guide: completes
    guide_tasks.poll(brand.brand_id, b["task_id"])
    done = brand.admin("GET", f"/guide-tasks/{b['task_id']}").json()
    assert done["state"] == "completed" and done["guides_executed"] == 2
    events = [e for e in bus.events(brand.brand_id, "guide_task.completed") if e["detail"]["task_id"] == b["task_id"]]
    assert len(events) == 1
    assert {k: events[0]["detail"][k] for k in ("guides_assigned", "guides_executed", "execution_rate",
                                                "contacts_targeted", "contacts_sent")} == {
        "guides_assigned": 3, "guides_executed": 2, "execution_rate": 0.6667, "contacts_targeted": 6,
        "contacts_sent": 3}
    assert [t["task_id"] for t in as_guide(brand, zhao, "GET", "/me/tasks").json()["tasks"]] == [a["task_id"]]

    board = brand.admin("GET", "/guides/leaderboard", params={"metric": "execution_rate", **AROUND_TODAY}).json()["rows"]
    assert [(r["guide_id"], r["tasks_assigned"], r["tasks_executed"], r["value"]) for r in board] == [
        ("g1", 1, 1, 1.0), ("g2", 1, 1, 1.0), ("g3", 2, 1, 0.5)]


class Killed(Exception):
    pass


@pytest.fixture
def driven(monkeypatch):
    """The worker driven by hand: what it would queue is kept here instead, and its clock can move."""
    queued: list[dict] = []
    monkeypatch.setattr(guide_tasks, "_send", lambda bodies, delay=0: queued.extend(bodies))
    monkeypatch.setattr(guide_tasks, "_defer", lambda body, until, now: queued.append({**body, "until": until}))
    clock = {"skew": 0.0}
    real = guide_tasks._clock
    monkeypatch.setattr(guide_tasks, "_clock", lambda: real() + clock["skew"])
    return queued, clock


def kill_at(monkeypatch, step: str | None) -> None:
    def at(name: str) -> None:
        if name == step:
            raise Killed(name)
    monkeypatch.setattr(guide_tasks, "_step", at)


def chunk(brand, task_id: str):
    from chalicelib.storage import guide_tasks as guide_task_store
    [only] = guide_task_store.chunks_of(brand.brand_id, task_id, "g1")
    return only


@pytest.mark.parametrize("step", ["claimed", "called"])
def test_a_worker_killed_at_each_step_creates_the_message_once(brand, stack, driven, monkeypatch, step):
    queued, clock = driven
    for n in (1, 2):
        wecom_event(brand, "add", "li", f"wm_k{n}", state="S1")
    text = f"killed at {step} {brand.brand_id}"
    task = new_task(brand, text, guide_ids=["g1"])
    guide_tasks.fire(brand.brand_id, task["task_id"])
    guide_tasks.fire(brand.brand_id, task["task_id"])                    # a duplicate fire queues nothing more
    assert [m["kind"] for m in queued] == ["guide", "poll"]
    message = queued[0]

    kill_at(monkeypatch, step)
    with pytest.raises(Killed):
        guide_tasks.handle(message)
    assert len(sim_tasks(stack, text)) == (1 if step == "called" else 0)
    assert chunk(brand, task["task_id"]).state == "creating"

    kill_at(monkeypatch, None)
    guide_tasks.handle(message)                                         # redelivered inside the lease: waits
    assert queued[-1]["kind"] == "guide" and "until" in queued[-1]
    assert len(sim_tasks(stack, text)) == (1 if step == "called" else 0)

    clock["skew"] = guide_tasks.LEASE + 1                              # the lease is over
    lists = sim(stack, "GET", "__sim/calls").get("cgi-bin/externalcontact/get_groupmsg_list_v2", 0)
    guide_tasks.handle(message)
    assert sim(stack, "GET", "__sim/calls")["cgi-bin/externalcontact/get_groupmsg_list_v2"] == lists + 1
    [made] = sim_tasks(stack, text)
    assert made["external_userid"] == ["wm_k1", "wm_k2"]
    stored = chunk(brand, task["task_id"])
    assert (stored.state, stored.msgid) == ("created", made["msgid"])
    guide_tasks.handle(message)                                         # and any later redelivery
    assert len(sim_tasks(stack, text)) == 1


def test_a_call_proven_not_sent_is_made_again_and_once(brand, stack, driven):
    queued, _clock = driven
    wecom_event(brand, "add", "li", "wm_t1", state="S1")
    text = f"transient {brand.brand_id}"
    task = new_task(brand, text, guide_ids=["g1"])
    guide_tasks.fire(brand.brand_id, task["task_id"])
    fault = {"api": "cgi-bin/externalcontact/add_msg_template", "errcode": -1, "rate": 1}
    sim(stack, "POST", "__sim/faults", fault)
    try:
        with pytest.raises(guide_tasks.WeChatError):
            guide_tasks.handle(queued[0])
    finally:
        sim(stack, "POST", "__sim/faults", {**fault, "rate": 0})
    assert chunk(brand, task["task_id"]).state == "planned" and sim_tasks(stack, text) == []
    guide_tasks.handle(queued[0])
    guide_tasks.handle(queued[0])
    assert [t["external_userid"] for t in sim_tasks(stack, text)] == [["wm_t1"]]


def test_bad_tasks_are_refused_and_store_nothing(brand):
    from tests.integration.conftest import table_items
    before = table_items()
    cases = [({"guide_ids": ["g1"], "store_ids": ["sz"]}, "missing_guides"),
             ({}, "missing_guides"),
             ({"guide_ids": ["nobody"]}, "unknown_guide"),
             ({"store_ids": ["nowhere"]}, "unknown_store"),
             ({"guide_ids": ["g1"], "due_at": _at(60 * 24 * 40)}, "invalid_due_at"),
             ({"guide_ids": ["g1"], "send_at": _at(-120)}, "invalid_send_at"),
             ({"guide_ids": ["g1"], "message": {}}, "invalid_message"),
             ({"guide_ids": ["g1"], "audience": {"store_ids": ["sz"]}}, "invalid_audience"),
             ({"guide_ids": ["g1"], "timezone": "Mars/Base"}, "invalid_timezone"),
             ({"guide_ids": ["g1"], "surprise": 1}, "unknown_field")]
    for fields, code in cases:
        body = {"name": "t", "message": {"text": "hi"}, "send_at": _at(60), "due_at": _at(120), **fields}
        r = brand.admin("POST", "/guide-tasks", body)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (fields, r.text)
    assert table_items() == before
    r = brand.admin("GET", "/guide-tasks/gt_nosuchtask000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_guide_task"


def test_concurrent_deliveries_of_one_guides_message_create_one_message(brand, stack, driven):
    queued, _clock = driven
    for n in (1, 2, 3):
        wecom_event(brand, "add", "li", f"wm_c{n}", state="S1")
    text = f"concurrent {brand.brand_id}"
    task = new_task(brand, text, guide_ids=["g1"])
    guide_tasks.fire(brand.brand_id, task["task_id"])
    message = queued[0]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: guide_tasks.handle(message), range(6)))
    assert [t["external_userid"] for t in sim_tasks(stack, text)] == [["wm_c1", "wm_c2", "wm_c3"]]
    from chalicelib.storage import guide_tasks as guide_task_store
    [mine] = guide_task_store.guides_of(brand.brand_id, task["task_id"])
    assert (mine.state, mine.chunks) == ("created", 1)
    counters = brand.admin("GET", "/guides/leaderboard", params={"metric": "execution_rate", **AROUND_TODAY}).json()["rows"]
    assert [(r["guide_id"], r["tasks_assigned"]) for r in counters] == [("g1", 1)]     # assigned once
