"""Developer commands: `python -m siyu_dev run` (the local stack) and `python -m siyu_dev scan` (a shopper's phone).

    python -m siyu_dev run                                  # everything on 127.0.0.1, demo brand seeded
    python -m siyu_dev scan --scene S1 --openid o123        # follow the demo OA through store S1's QR code
    python -m siyu_dev scan --app wecom --external-userid wmABC --guide zhangsan --scene S1
    python -m siyu_dev scan --app mp --scene S1 --openid o123 --unionid u123   # mini-program login + scan
    python -m siyu_dev coupon                               # define, claim, look up at the till, redeem
    python -m siyu_dev campaign                             # a subscribe credit and a campaign in a minute
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

STATE_FILE = Path(os.environ.get("SIYU_LOCAL_STATE", ".siyu-local/demo.json"))

DEMO_BRAND = {
    "brand_id": "demo", "name": "Demo Tea 示例茶饮", "timezone": "Asia/Shanghai",
    "auto_reply": "Thanks for your message! A tea specialist will answer soon.",
    "wechat": {
        "oa": {"app_id": "wxdemo0a0000000001", "app_secret": "demo-oa-secret", "token": "demoOaToken",
               "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
        "mp": {"app_id": "wxdemomp000000001", "app_secret": "demo-mp-secret", "token": "demoMpToken",
               "encoding_aes_key": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"},
        "wecom": {"corp_id": "wwdemocorp0000001", "secret": "demo-wecom-secret", "token": "demoWecomToken",
                  "encoding_aes_key": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"},
    },
}
DEMO_STORES = [{"store_id": "sz-futian", "name": "Futian Flagship 福田旗舰店", "city": "Shenzhen"},
               {"store_id": "sh-jingan", "name": "Jing'an Store 静安店", "city": "Shanghai"}]
DEMO_GUIDES = [{"guide_id": "g-zhang", "store_id": "sz-futian", "name": "Zhang San", "wecom_user_id": "zhangsan"}]
DEMO_SUBSCRIBE_TEMPLATE = "TPL_demo_daily_special"     # a mini-program subscribe-message template id
DEMO_CHANNELS = [
    {"scene": "S1", "store_id": "sz-futian", "guide_id": "g-zhang", "source": "counter_poster",
     "tags": ["poster", "shenzhen"], "welcome_message": "Welcome to Demo Tea! Show your member code at the till."},
    {"scene": "S2", "store_id": "sh-jingan", "source": "receipt_qr", "tags": ["receipt", "shanghai"]},
]


def http(method: str, url: str, payload=None, key: str | None = None, raw: bytes | None = None,
         content_type: str = "application/json", headers: dict | None = None) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    req.add_header("Content-Type", content_type)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def seed_demo(api_url: str, platform_key: str) -> dict:
    status, brand = http("POST", f"{api_url}/admin/brands", DEMO_BRAND, platform_key)
    if status != 201:
        raise SystemExit(f"could not create the demo brand: {status} {brand}")
    admin_key = brand["admin_key"]
    pos_keys = {}
    for store in DEMO_STORES:
        status, made = http("POST", f"{api_url}/admin/demo/stores", store, admin_key)
        pos_keys[store["store_id"]] = made["pos_key"]
    for guide in DEMO_GUIDES:
        http("POST", f"{api_url}/admin/demo/guides", guide, admin_key)
    for channel in DEMO_CHANNELS:
        http("POST", f"{api_url}/admin/demo/channels", channel, admin_key)
    return {"admin_key": admin_key, "pos_keys": pos_keys}


def cmd_run(args) -> None:
    from siyu_dev.stack import LocalStack
    stack = LocalStack(api_port=int(os.environ.get("SIYU_API_PORT", 8000)),
                       aws_port=int(os.environ.get("SIYU_AWS_PORT", 4566)),
                       wechat_port=int(os.environ.get("SIYU_WECHAT_PORT", 8900)),
                       platform_key=os.environ.get("SIYU_PLATFORM_KEY"), quiet=not args.verbose)
    started = time.monotonic()
    stack.start()
    keys = seed_demo(stack.api_url, stack.platform_key)
    state = {"api_url": stack.api_url, "aws_url": stack.aws_url, "wechat_url": stack.wechat_url,
             "platform_key": stack.platform_key, "brand": DEMO_BRAND, **keys,
             "tap_queue_url": stack.env.get("SIYU_LOCAL_TAP_QUEUE_URL")}
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2, ensure_ascii=False))
    py = sys.executable if not sys.executable.startswith(os.getcwd()) else ".venv/bin/python"
    print(f"""
siyu is up in {time.monotonic() - started:.1f}s — everything on 127.0.0.1, Ctrl-C stops it.

  API              {stack.api_url}          (GET /health)
  AWS emulator     {stack.aws_url}          (moto: DynamoDB, SQS, EventBridge, Scheduler, SSM)
  WeChat simulator {stack.wechat_url}          (GET /__sim/sent, /__sim/calls)

  platform key     {stack.platform_key}
  demo brand       demo — admin key {keys['admin_key']}
  stores           {', '.join(f"{s}: POS key {k}" for s, k in keys['pos_keys'].items())}
  (all of this is saved in {STATE_FILE} for the commands below)

Try it:
  1. A shopper scans the Futian store's QR code (scene S1) and follows the OA (safe mode, encrypted):
       {py} -m siyu_dev scan --scene S1 --openid o_demo_shopper --unionid u_demo_shopper
  2. See the member, attributed to store sz-futian, guide g-zhang, channel counter_poster:
       curl -s -H "Authorization: Bearer {keys['admin_key']}" '{stack.api_url}/admin/demo/members?openid=o_demo_shopper'
  3. The same shopper opens the mini-program from the Jing'an receipt code (S2): one member, last touch moves:
       {py} -m siyu_dev scan --app mp --scene S2 --openid o_mp_demo --unionid u_demo_shopper
  4. A customer adds guide Zhang San on WeCom:
       {py} -m siyu_dev scan --app wecom --scene S1 --external-userid wm_demo_1 --guide zhangsan
  5. A coupon: the brand defines it, the shopper claims it, the Futian till redeems it (and retries):
       {py} -m siyu_dev coupon --openid o_coupon_demo
  6. A campaign: the shopper accepts the subscribe message; a daily special goes out in a minute:
       {py} -m siyu_dev campaign --openid o_campaign_demo
  7. What siyu sent to WeChat, and the events on the bus:
       curl -s {stack.wechat_url}/__sim/sent
       {py} -m siyu_dev events
""", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("stopping…", flush=True)
    stack.stop()


def _state() -> dict:
    if not STATE_FILE.exists():
        raise SystemExit(f"{STATE_FILE} not found: start the stack with `make run` first")
    return json.loads(STATE_FILE.read_text())


def cmd_scan(args) -> None:
    """Do what WeChat's servers would do when a shopper scans: post the signed (and, in safe mode,
    encrypted) callback to siyu — or, for the mini-program, log in with a one-time code and scan."""
    from siyu_dev import phone
    state = _state()
    wechat = state["brand"]["wechat"]
    api, sim, brand_id = state["api_url"], state["wechat_url"], args.brand
    now = int(time.time())
    if args.app == "mp":
        _mp_shopper(state, brand_id, args.openid, args.unionid, args.scene)
        return
    if args.app == "wecom":
        cfg = wechat["wecom"]
        http("POST", f"{sim}/__sim/users", {"corp_id": cfg["corp_id"], "external_userid": args.external_userid,
                                            "unionid": args.unionid})
        message = phone.wecom_add_external_contact(corp_id=cfg["corp_id"], user_id=args.guide,
                                                   external_userid=args.external_userid, create_time=now,
                                                   state=args.scene, welcome_code=f"WELCOME{now}")
        cb = phone.build_callback(message, token=cfg["token"], receive_id=cfg["corp_id"],
                                  encoding_aes_key=cfg["encoding_aes_key"], wecom=True)
    else:
        cfg = wechat["oa"]
        http("POST", f"{sim}/__sim/users", {"app_id": cfg["app_id"], "openid": args.openid, "unionid": args.unionid})
        if args.event == "subscribe":
            message = phone.oa_subscribe(app_username="gh_demo", openid=args.openid, scene=args.scene,
                                         create_time=now)
        else:
            message = phone.oa_scan(app_username="gh_demo", openid=args.openid, scene=args.scene, create_time=now)
        cb = phone.build_callback(message, token=cfg["token"], receive_id=cfg["app_id"],
                                  encoding_aes_key=cfg["encoding_aes_key"], mode=args.mode, openid=args.openid)
    query = urllib.parse.urlencode(cb.query)
    status, answer = http("POST", f"{api}/wechat/{brand_id}/{args.app}?{query}", raw=cb.body,
                          content_type=cb.content_type)
    print(f"callback → {status} {answer}")


def _mp_shopper(state: dict, brand_id: str, openid: str, unionid: str | None, scene: str | None) -> str:
    """Log in to the mini-program as `openid` (a one-time wx.login code from the simulator) and open it
    from `scene`'s code; returns the siyu session."""
    api, sim = state["api_url"], state["wechat_url"]
    status, code = http("POST", f"{sim}/__sim/codes", {"openid": openid, "unionid": unionid,
                                                       "app_id": state["brand"]["wechat"]["mp"]["app_id"]})
    status, session = http("POST", f"{api}/mp/{brand_id}/login", {"code": code["code"]})
    print(f"login → {status} {json.dumps(session)[:120]}")
    if status != 200:
        raise SystemExit(1)
    status, result = http("POST", f"{api}/mp/{brand_id}/scan", {"scene": scene}, session["session"])
    print(f"scan  → {status} {json.dumps(result, ensure_ascii=False)}")
    return session["session"]


def _show(step: str, status: int, answer) -> None:
    print(f"{step} → {status} {json.dumps(answer, ensure_ascii=False)}")


def cmd_coupon(args) -> None:
    """A coupon's whole life: the brand defines it, the shopper claims it in the mini-program, and the
    Futian till looks the shopper up by member code and redeems it (then replays the request)."""
    state = _state()
    api, admin, pos = state["api_url"], state["admin_key"], state["pos_keys"]["sz-futian"]
    status, template = http("POST", f"{api}/admin/demo/coupon-templates", {
        "name": "¥10 off ¥30", "kind": "cash_off", "value": 1000, "min_spend_cents": 3000,
        "valid_days_after_claim": 30, "total_stock": 100, "per_member_limit": 1}, admin)
    _show("template", status, template)
    session = _mp_shopper(state, "demo", args.openid, None, "S1")
    status, claimed = http("POST", f"{api}/mp/demo/coupon-templates/{template['template_id']}/claim", {}, session)
    _show("claim", status, claimed)
    status, code = http("GET", f"{api}/mp/demo/me/member-code", None, session)
    _show("member code", status, code)
    status, found = http("POST", f"{api}/pos/demo/stores/sz-futian/member-lookup",
                         {"member_code": code["member_code"], "order_amount_cents": 4200}, pos)
    _show("till lookup", status, found)
    order = {"code": claimed["coupon"]["code"], "order_id": f"demo-{int(time.time())}", "order_amount_cents": 4200,
             "till_id": "till-1"}
    for attempt in ("redeem", "redeem again (the till retried)"):
        _show(attempt, *http("POST", f"{api}/pos/demo/stores/sz-futian/redemptions", order, pos,
                             headers={"Idempotency-Key": order["order_id"]}))


def cmd_campaign(args) -> None:
    """The shopper accepts the brand's subscribe message in the mini-program; the brand schedules a
    campaign to every Shenzhen member a minute from now. The local Scheduler fires it on time."""
    from datetime import datetime, timedelta, timezone
    state = _state()
    api, admin = state["api_url"], state["admin_key"]
    session = _mp_shopper(state, "demo", args.openid, None, "S1")
    status, credits = http("POST", f"{api}/mp/demo/me/subscriptions", {"accepted": [DEMO_SUBSCRIBE_TEMPLATE]},
                           session)
    _show("subscribe credit", status, credits)
    at = (datetime.now(timezone.utc) + timedelta(seconds=args.delay)).isoformat()
    status, campaign = http("POST", f"{api}/admin/demo/campaigns", {
        "name": "今日特价 daily special", "audience": {"tags_any": ["shenzhen"]},
        "message": {"channel": "mp_subscribe", "template_id": DEMO_SUBSCRIBE_TEMPLATE, "page": "pages/special/index",
                    "data": {"thing1": {"value": "Oolong milk tea"}, "amount2": {"value": "¥9.9"}}},
        "schedule": {"at": at}}, admin)
    _show("campaign", status, campaign)
    if status == 201:
        print(f"""
It fires at {campaign['schedule']['at']}. Watch it:
  curl -s -H "Authorization: Bearer {admin}" {api}/admin/demo/campaigns/{campaign['campaign_id']}
  curl -s {state['wechat_url']}/__sim/sent""")


def cmd_events(args) -> None:
    """Print the domain events that reached the bus (via the local tap queue)."""
    from siyu_dev.stack import LOCAL_ENV
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    state = _state()
    os.environ["AWS_ENDPOINT_URL"] = state["aws_url"]
    from chalicelib import aws
    sqs = aws.client("sqs")
    got = sqs.receive_message(QueueUrl=state["tap_queue_url"], MaxNumberOfMessages=10, VisibilityTimeout=0,
                              WaitTimeSeconds=1).get("Messages", [])
    for m in got:
        event = json.loads(m["Body"])
        print(event["detail-type"], json.dumps(event["detail"], ensure_ascii=False))
    if not got:
        print("no events yet")


def cmd_platform_key(args) -> None:
    """Register a new platform key in a deployed stack's table (AWS credentials from the environment)."""
    os.environ["SIYU_TABLE"] = args.table
    from datetime import datetime, timezone
    from chalicelib.services.auth import new_key
    from chalicelib.storage import tenancy
    key = new_key("platform")
    tenancy.create_platform_key(key, datetime.now(timezone.utc))
    print(f"platform key (shown once, stored only as its SHA-256): {key}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m siyu_dev")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the local stack with a demo brand")
    run.add_argument("--verbose", action="store_true", help="log every request")
    run.set_defaults(func=cmd_run)
    scan = sub.add_parser("scan", help="simulate a shopper scanning a channel code")
    scan.add_argument("--brand", default="demo")
    scan.add_argument("--app", choices=["oa", "mp", "wecom"], default="oa")
    scan.add_argument("--scene", default=None)
    scan.add_argument("--openid", default="o_demo_shopper")
    scan.add_argument("--unionid", default=None)
    scan.add_argument("--external-userid", default="wm_demo_shopper")
    scan.add_argument("--guide", default="zhangsan", help="WeCom UserID of the guide the shopper adds")
    scan.add_argument("--event", choices=["subscribe", "SCAN"], default="subscribe",
                      help="OA: subscribe (first follow) or SCAN (already a follower)")
    scan.add_argument("--mode", choices=["plain", "compat", "safe"], default="safe")
    scan.set_defaults(func=cmd_scan)
    pk = sub.add_parser("platform-key", help="register a new platform key in a deployed stack")
    pk.add_argument("--table", required=True, help="the MainTableName output of the stack")
    pk.set_defaults(func=cmd_platform_key)
    coupon = sub.add_parser("coupon", help="define a coupon, claim it in the mini-program, redeem it at the till")
    coupon.add_argument("--openid", default="o_coupon_demo")
    coupon.set_defaults(func=cmd_coupon)
    campaign = sub.add_parser("campaign", help="grant a subscribe credit and schedule a campaign to Shenzhen members")
    campaign.add_argument("--openid", default="o_campaign_demo")
    campaign.add_argument("--delay", type=int, default=60, help="seconds from now to the fire")
    campaign.set_defaults(func=cmd_campaign)
    events = sub.add_parser("events", help="print domain events seen on the bus")
    events.set_defaults(func=cmd_events)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
