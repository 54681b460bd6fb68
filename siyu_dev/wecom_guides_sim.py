"""The WeCom side of guides, for the simulator (siyu_dev.wechat_sim imports this and adds its routes).

Login: `auth/getuserinfo` (OAuth in WeCom's browser) and `miniprogram/jscode2session` (a WeCom
mini-program) answer one-time codes minted by `POST /__sim/wecom/codes {"userid"}` (or
{"external_userid"}: a customer, who gets openid/external_userid and no userid, as WeCom answers).

Tags: `externalcontact/get_corp_tag_list`, `add_corp_tag`, `mark_tag` (ids checked; marks kept per
(userid, external_userid), read with `GET /__sim/wecom/tags`).

Group messages (客户群发), as WeCom runs them:
- `add_msg_template` (chat_type single, sender = a guide) creates a task held until the guide confirms
  on their phone: `POST /__sim/wecom/confirm {"userid", "msgid"}`, or `POST /__sim/wecom/auto_confirm
  {"rate"}` confirms that share of new tasks at once. Unknown/removed customers come back in fail_list.
- on confirmation every customer gets a status: 1 sent; 2 no longer the guide's contact (`POST
  /__sim/wecom/removed {"userid", "external_userid"}`); 3 already received a 群发 from the corp today
  (one per customer per day, across all senders).
- `get_groupmsg_list_v2` (creator, time range, cursor), `get_groupmsg_task` and
  `get_groupmsg_send_result` page with `limit` and `next_cursor`.
- `GET /__sim/wecom/tasks` lists what was created (a test counts creations: nothing twice).
"""
from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

MAX_PER_TEMPLATE = 10000
CN = timezone(timedelta(hours=8))      # WeCom's day for the once-a-day cap


class GuideSimState:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes: dict[str, dict] = {}
        self.tags: dict[str, dict] = {}                 # tag id -> {name, group}
        self.marks: dict[tuple[str, str], set] = {}     # (userid, external_userid) -> tag ids
        self.removed: set[tuple[str, str]] = set()      # (userid, external_userid) no longer contacts
        self.tasks: dict[str, dict] = {}                # msgid -> task
        self.daily: dict[tuple[str, str, str], int] = {}  # (corp, external_userid, day) -> 群发 received
        self.auto_confirm = 0.0


def _base():
    from siyu_dev import wechat_sim
    return wechat_sim


def _state(sim) -> GuideSimState:
    with sim.state.lock:
        if getattr(sim.state, "guides", None) is None:
            sim.state.guides = GuideSimState()
        return sim.state.guides


def _ok(**payload):
    return _base().Reply(200, {"errcode": 0, "errmsg": "ok", **payload})


CONTROL = ("codes", "confirm", "auto_confirm", "removed", "tags", "tasks")


def control(sim, method: str, what: str, payload: dict) -> None:
    """`/__sim/wecom/<what>`; raises Reply."""
    Reply = _base().Reply
    g = _state(sim)
    with g.lock:
        if what == "codes":
            if not (payload.get("userid") or payload.get("external_userid")):
                raise Reply(400, {"error": "userid or external_userid is required"})
            code = "wc_" + secrets.token_hex(8)
            g.codes[code] = {**payload, "used": False}
            raise Reply(200, {"code": code})
        if what == "auto_confirm":
            g.auto_confirm = float(payload.get("rate") or 0)
            raise Reply(200, {"ok": True})
        if what == "removed":
            g.removed.add((payload["userid"], payload["external_userid"]))
            raise Reply(200, {"ok": True})
        if what == "tags":
            raise Reply(200, {f"{u}|{e}": sorted(g.tags[t]["name"] for t in ids) for (u, e), ids in g.marks.items()})
        if what == "tasks":
            raise Reply(200, [{"msgid": m, "corp_id": t["corp"], "sender": t["sender"], "text": t["text"],
                               "external_userid": t["external_userid"], "confirmed": t["confirmed"]}
                              for m, t in g.tasks.items()])
        if what == "confirm":
            task = g.tasks.get(payload.get("msgid", ""))
            if task is None or task["sender"] != payload.get("userid"):
                raise Reply(404, {"error": "no such task for this user"})
            _confirm(g, task)
            raise Reply(200, {"ok": True, "statuses": {e: s for e, s in task["status"].items()}})
    raise Reply(404, {"error": f"no control endpoint wecom/{what}"})


def _confirm(g: GuideSimState, task: dict) -> None:
    """The guide tapped send: each customer is sent, capped (3) or not a contact (2). Lock held."""
    if task["confirmed"]:
        return
    now = time.time()
    day = datetime.fromtimestamp(now, CN).date().isoformat()
    task["confirmed"], task["send_time"] = True, int(now)
    for ext in task["external_userid"]:
        if (task["sender"], ext) in g.removed:
            task["status"][ext] = 2
        elif g.daily.get((task["corp"], ext, day), 0) >= 1:
            task["status"][ext] = 3
        else:
            g.daily[(task["corp"], ext, day)] = g.daily.get((task["corp"], ext, day), 0) + 1
            task["status"][ext] = 1


def _code_login(field: str):
    def handler(sim, q, p):
        sim._app_of(q)
        g = _state(sim)
        with g.lock:
            code = g.codes.get(q.get(field, ""))
            if code is None:
                raise _base()._err(40029)
            if code["used"]:
                raise _base()._err(40163)
            code["used"] = True
        if code.get("userid"):
            out = {"userid": code["userid"]}
            if field == "js_code":
                out.update(corpid=code.get("corp_id") or "", session_key=secrets.token_urlsafe(16))
            else:
                out["user_ticket"] = "ut_" + secrets.token_hex(8)
            raise _ok(**out)
        raise _ok(openid="o_" + code["external_userid"], external_userid=code["external_userid"])
    return handler


def _corp_tag_list(sim, q, p):
    sim._app_of(q)
    g = _state(sim)
    with g.lock:
        groups: dict[str, list] = {}
        for tag_id, tag in g.tags.items():
            groups.setdefault(tag["group"], []).append({"id": tag_id, "name": tag["name"]})
    raise _ok(tag_group=[{"group_name": name, "tag": tags} for name, tags in groups.items()])


def _add_corp_tag(sim, q, p):
    sim._app_of(q)
    g = _state(sim)
    wanted = p.get("tag") or []
    with g.lock:
        names = {t["name"] for t in g.tags.values()}
        if any(not isinstance(t, dict) or not t.get("name") for t in wanted):
            raise _base()._err(47001)
        if any(t["name"] in names for t in wanted):
            raise _base()._err(40071)       # a tag of this name exists
        made = []
        for t in wanted:
            tag_id = "et" + secrets.token_hex(8)
            g.tags[tag_id] = {"name": t["name"], "group": p.get("group_name") or "default"}
            made.append({"id": tag_id, "name": t["name"]})
    raise _ok(tag_group={"group_name": p.get("group_name") or "default", "tag": made})


def _mark_tag(sim, q, p):
    sim._app_of(q)
    g = _state(sim)
    with g.lock:
        for tag_id in (p.get("add_tag") or []) + (p.get("remove_tag") or []):
            if tag_id not in g.tags:
                raise _base()._err(40068)   # invalid tagid
        if not p.get("userid") or not p.get("external_userid"):
            raise _base()._err(47001)
        marks = g.marks.setdefault((p["userid"], p["external_userid"]), set())
        marks |= set(p.get("add_tag") or [])
        marks -= set(p.get("remove_tag") or [])
    raise _ok()


def _add_msg_template(sim, q, p):
    corp = sim._app_of(q)
    users = p.get("external_userid") or []
    if not isinstance(users, list) or not users or len(users) > MAX_PER_TEMPLATE:
        raise _base()._err(47001)
    sim._record("cgi-bin/externalcontact/add_msg_template", corp, users, None, p.get("text"))
    g = _state(sim)
    msgid = "msg" + secrets.token_hex(8)
    sender = p.get("sender")
    with g.lock:
        fail = [u for u in users if sender and (sender, u) in g.removed]
        task = {"msgid": msgid, "corp": corp, "sender": sender or "", "external_userid": list(users),
                "create_time": int(time.time()), "confirmed": False, "send_time": None,
                "status": {u: 0 for u in users}, "text": p.get("text"), "attachments": p.get("attachments")}
        g.tasks[msgid] = task
        if g.auto_confirm and sim.state.random.random() < g.auto_confirm:
            _confirm(g, task)
    raise _ok(msgid=msgid, fail_list=fail)


def _page(items: list, p: dict, max_limit: int):
    try:
        limit = min(int(p.get("limit") or max_limit), max_limit)
        start = int(p.get("cursor") or 0)
    except (TypeError, ValueError):
        raise _base()._err(47001) from None
    chunk = items[start:start + limit]
    return chunk, (str(start + limit) if start + limit < len(items) else "")


def _groupmsg_list(sim, q, p):
    corp = sim._app_of(q)
    g = _state(sim)
    try:
        start, end = int(p["start_time"]), int(p["end_time"])
    except (KeyError, TypeError, ValueError):
        raise _base()._err(47001) from None
    if end - start > 31 * 86400:
        raise _base()._err(47001)
    with g.lock:
        found = [t for t in g.tasks.values() if t["corp"] == corp and start <= t["create_time"] <= end
                 and (not p.get("creator") or t["sender"] == p["creator"])]
        found.sort(key=lambda t: (t["create_time"], t["msgid"]))
        chunk, cursor = _page(found, p, 100)
        listed = [{"msgid": t["msgid"], "creator": t["sender"], "create_type": 0, "text": t["text"],
                   "attachments": t["attachments"] or []} for t in chunk]
    raise _ok(group_msg_list=listed, next_cursor=cursor)


def _groupmsg_task(sim, q, p):
    sim._app_of(q)
    g = _state(sim)
    with g.lock:
        task = g.tasks.get(p.get("msgid", ""))
        if task is None:
            raise _base()._err(41063)
        rows = [{"userid": task["sender"], "status": 2 if task["confirmed"] else 0,
                 "send_time": task["send_time"] or 0}]
    chunk, cursor = _page(rows, p, 1000)
    raise _ok(task_list=chunk, next_cursor=cursor)


def _groupmsg_send_result(sim, q, p):
    sim._app_of(q)
    g = _state(sim)
    with g.lock:
        task = g.tasks.get(p.get("msgid", ""))
        if task is None or p.get("userid") != task["sender"]:
            raise _base()._err(41063)
        rows = [{"external_userid": e, "chat_id": "", "userid": task["sender"], "status": s,
                 "send_time": task["send_time"] or 0} for e, s in task["status"].items()]
    chunk, cursor = _page(rows, p, 1000)
    raise _ok(send_list=chunk, next_cursor=cursor)


ROUTES = {
    "cgi-bin/auth/getuserinfo": _code_login("code"),
    "cgi-bin/miniprogram/jscode2session": _code_login("js_code"),
    "cgi-bin/externalcontact/get_corp_tag_list": _corp_tag_list,
    "cgi-bin/externalcontact/add_corp_tag": _add_corp_tag,
    "cgi-bin/externalcontact/mark_tag": _mark_tag,
    "cgi-bin/externalcontact/add_msg_template": _add_msg_template,
    "cgi-bin/externalcontact/get_groupmsg_list_v2": _groupmsg_list,
    "cgi-bin/externalcontact/get_groupmsg_task": _groupmsg_task,
    "cgi-bin/externalcontact/get_groupmsg_send_result": _groupmsg_send_result,
}
