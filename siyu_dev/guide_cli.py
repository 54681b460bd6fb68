"""`python -m siyu_dev guide`: the guide's workbench on the local stack, as a guide meets it.

The guide signs in from WeCom (a one-time code the simulator mints, exchanged by siyu at
auth/getuserinfo), then sees their store and numbers, their members newest first, tags one, and
with --task receives a head-office task (created at WeCom in their name, waiting for them to confirm).
"""
from __future__ import annotations

import json
import time


def _show(step: str, status: int, answer) -> None:
    print(f"{step} → {status} {json.dumps(answer, ensure_ascii=False)[:400]}")


def cmd_guide(args) -> None:
    """Sign in as a guide from WeCom, print their numbers and members, tag the newest member, and
    (--task) have head office send them a task they see in their workbench."""
    from siyu_dev.__main__ import _state, http
    state = _state()
    api, sim, brand_id = state["api_url"], state["wechat_url"], args.brand
    corp = state["brand"]["wechat"]["wecom"]["corp_id"]
    status, code = http("POST", f"{sim}/__sim/wecom/codes", {"userid": args.guide, "corp_id": corp})
    status, login = http("POST", f"{api}/guide/{brand_id}/login", {"code": code["code"]})
    _show("login (WeCom OAuth code)", status, login)
    if status != 200:
        raise SystemExit(1)
    session = login["session"]
    status, me = http("GET", f"{api}/guide/{brand_id}/me", None, session)
    if status != 200:
        _show("me", status, me)
        raise SystemExit(1)
    guide, where, figures = me["guide"], me["store"], me["figures"]
    print(f"\n{guide['name']} ({guide['guide_id']}) at {where['name']} — {me['from']} to {me['to']}")
    for name in ("contacts", "new_members", "lost_contacts", "converted_members", "orders", "gmv_cents",
                 "coupons_redeemed", "execution_rate"):
        print(f"  {name:<18} {figures[name]}")
    status, page = http("GET", f"{api}/guide/{brand_id}/me/members?limit=10", None, session)
    members = page.get("members", []) if status == 200 else []
    print(f"\nmembers (newest first, {len(members)} shown):")
    for m in members:
        print(f"  {m['member_id']}  joined {m['joined_at']}  via {m['first_touch']['via']:<6} "
              f"tags {','.join(m['tags']) or '-'}  orders {m['orders']}  gmv {m['gmv_cents']}  "
              f"coupons {len(m['coupons'])}")
    if members and args.tag:
        target = members[0]["member_id"]
        _show(f"\ntag {target} +{args.tag}", *http("POST", f"{api}/guide/{brand_id}/me/members/{target}/tags",
                                                   {"add": [args.tag]}, session))
    if args.task:
        now = time.time()
        body = {"name": "新品试饮 new-season tasting", "guide_ids": [login["guide_id"]],
                "message": {"text": "新品到店，欢迎来试饮！ New season teas are in — come and taste."},
                "send_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 5)),
                "due_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400))}
        status, task = http("POST", f"{api}/admin/{brand_id}/guide-tasks", body, state["admin_key"])
        _show("\nhead office creates a task", status, task)
        if status == 201:
            deadline = time.monotonic() + args.timeout
            mine = []
            while time.monotonic() < deadline:
                status, listed = http("GET", f"{api}/guide/{brand_id}/me/tasks", None, session)
                mine = [t for t in listed.get("tasks", []) if t["task_id"] == task["task_id"]]
                if mine and mine[0]["mine"] and mine[0]["mine"]["state"] == "created":
                    break
                time.sleep(1)
            _show("the guide's open tasks", status, mine)
            print(f"\nconfirm it on the guide's phone: curl -s {sim}/__sim/wecom/tasks, then\n"
                  f"  curl -s -X POST {sim}/__sim/wecom/confirm -d '{{\"userid\": \"{args.guide}\", \"msgid\": \"…\"}}'\n"
                  f"and watch: curl -s -H 'Authorization: Bearer {state['admin_key']}' "
                  f"{api}/admin/{brand_id}/guide-tasks/{task['task_id']}")


def register(sub, command, py: str) -> None:
    guide = command(sub, "guide", cmd_guide, "sign in as a guide and show their workbench",
                    f"{py} guide                      # Zhang San's numbers and members\n"
                    f"{py} guide --tag vip --task     # tag the newest member; receive a head-office task")
    guide.add_argument("--brand", default="demo")
    guide.add_argument("--guide", default="zhangsan", help="the guide's WeCom UserID")
    guide.add_argument("--tag", default=None, help="a tag to add to the guide's newest member")
    guide.add_argument("--task", action="store_true", help="have head office send the guide a task")
    guide.add_argument("--timeout", type=int, default=30, help="with --task: seconds to wait for it to reach WeCom")
