"""Developer commands for the local stack (`make run`), and one for a deployed stack.

    python -m siyu_dev run                                  # everything on 127.0.0.1, demo brand seeded
    python -m siyu_dev scan --scene S1 --openid o123        # follow the demo OA through store S1's QR code
    python -m siyu_dev scan --app wecom --external-userid wmABC --guide zhangsan --scene S1
    python -m siyu_dev scan --app mp --scene S1 --openid o123 --unionid u123   # mini-program login + scan
    python -m siyu_dev coupon                               # define, claim, look up at the till, redeem
    python -m siyu_dev campaign --wait                      # a subscribe credit and a campaign in a minute
    python -m siyu_dev events --follow                      # the latest domain events, then new ones live
    python -m siyu_dev guide --tag vip --task               # the guide's workbench (siyu_dev.guide_cli)
    python -m siyu_dev order                                # an order at the till; the stats it moved
    python -m siyu_dev platform-key --region cn-north-1 --table <MainTableName>   # a deployed stack

Every command but `run` and `platform-key` talks to the stack `make run` started (its addresses and
keys are in .siyu-local/demo.json); run it in another terminal first.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

STATE_FILE = Path(os.environ.get("SIYU_LOCAL_STATE", ".siyu-local/demo.json"))
EVENTS_FILE = STATE_FILE.with_name("events.jsonl")     # what `events` has read from the bus tap, oldest first
NOT_RUNNING = "is `make run` running?"

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
         content_type: str = "application/json", headers: dict | None = None,
         raw_answer: bool = False) -> tuple[int, object]:
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
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        base = urllib.parse.urlsplit(url)
        reason = getattr(err, "reason", err)
        raise SystemExit(f"cannot reach {base.scheme}://{base.netloc} ({reason}); {NOT_RUNNING}") from None
    if raw_answer and status < 400:
        return status, body
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


def _port(env_var: str, default: int) -> int:
    value = os.environ.get(env_var, str(default))
    if not value.isascii() or not value.isdigit() or not 0 <= int(value) <= 65535:
        raise SystemExit(f"{env_var}={value!r} is not a port number (0-65535)")
    return int(value)


def cmd_run(args) -> None:
    """Start the AWS emulator, the WeChat simulator, the API and the event pump on 127.0.0.1, create
    the demo brand, and print its keys and what to try. Ctrl-C stops everything (nothing is kept)."""
    from siyu_dev.listen import PortInUse
    from siyu_dev.stack import LocalStack
    stack = LocalStack(api_port=_port("SIYU_API_PORT", 8000), aws_port=_port("SIYU_AWS_PORT", 4566),
                       wechat_port=_port("SIYU_WECHAT_PORT", 8900),
                       platform_key=os.environ.get("SIYU_PLATFORM_KEY"), quiet=not args.verbose)
    started = time.monotonic()
    try:
        stack.start()
    except PortInUse as err:
        raise SystemExit(str(err)) from None
    keys = seed_demo(stack.api_url, stack.platform_key)
    state = {"api_url": stack.api_url, "aws_url": stack.aws_url, "wechat_url": stack.wechat_url,
             "platform_key": stack.platform_key, "brand": DEMO_BRAND, **keys,
             "tap_queue_url": stack.env.get("SIYU_LOCAL_TAP_QUEUE_URL")}
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2, ensure_ascii=False))
    EVENTS_FILE.write_text("")     # a new stack, a new bus: no event of the previous run is shown as this one's
    stop = threading.Event()
    from siyu_dev import history
    writer = history.seed_in_background(state, STATE_FILE, stop.is_set)     # a month for the scoreboard (siyu_dev.history)
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

  Console (in a browser; keys go in the sign-in form, never in the address):
    till (核销台)       {stack.api_url}/console/till        brand demo, store sz-futian, its POS key above
    dashboard (运营后台) {stack.api_url}/console/dashboard   brand demo, the admin key above
    a coupon to redeem there: {py} -m siyu_dev coupon --at-the-till --openid o_till_demo

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
  7. What siyu sent to WeChat, and the events on the bus (the latest; --follow for new ones):
       curl -s {stack.wechat_url}/__sim/sent
       {py} -m siyu_dev events
  8. The scoreboard: a month of history (members from S1, S2, S3 and no code, orders, refunds, coupons)
     is being written in the background (a line below says when). Then, per store (or day, guide, channel):
       curl -s -H "Authorization: Bearer {keys['admin_key']}" '{stack.api_url}/admin/demo/stats?from={_today(30)}&to={_today()}&by=store'
     and an order at the Futian till for a demo member, with the figures it moved:
       {py} -m siyu_dev order
  9. The guide's workbench: Zhang San signs in from WeCom and sees their numbers and members (after 4):
       {py} -m siyu_dev guide --tag vip --task
  10. Print the Futian counter's code (made once through WeChat, kept in S3; --app mp|wecom too) and scan it:
       {py} -m siyu_dev code --scene S1 --app oa --openid o_printed_demo --pdf sz-futian
""", flush=True)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("stopping…", flush=True)
    writer.join(timeout=15)     # the history stops at its next day: stop the stack under no writer's feet
    stack.stop()
    STATE_FILE.unlink(missing_ok=True)      # the keys in it die with the stack


def _today(days_ago: int = 0) -> str:
    from zoneinfo import ZoneInfo
    return (datetime.now(ZoneInfo(DEMO_BRAND["timezone"])).date() - timedelta(days=days_ago)).isoformat()


def _state() -> dict:
    if not STATE_FILE.exists():
        raise SystemExit(f"{STATE_FILE} not found; {NOT_RUNNING} (start it in another terminal)")
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
    from `scene`'s code; returns the siyu session the scan answered (it names the member, as a
    mini-program keeps it for its later calls)."""
    api, sim = state["api_url"], state["wechat_url"]
    status, code = http("POST", f"{sim}/__sim/codes", {"openid": openid, "unionid": unionid,
                                                       "app_id": state["brand"]["wechat"]["mp"]["app_id"]})
    status, session = http("POST", f"{api}/mp/{brand_id}/login", {"code": code["code"]})
    print(f"login → {status} {json.dumps(session)[:120]}")
    if status != 200:
        raise SystemExit(1)
    status, result = http("POST", f"{api}/mp/{brand_id}/scan", {"scene": scene}, session["session"])
    print(f"scan  → {status} {json.dumps(result, ensure_ascii=False)}")
    return result.get("session", session["session"])


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
    if args.at_the_till:
        print(f"""
Now redeem it in the console's till ({api}/console/till, brand demo, store sz-futian, its POS key above):
  order amount  42.00 (it needs at least 30.00)
  member code   {code['member_code']}   (valid until {code['expires_at']}; run this command again for a fresh one)
  or the coupon code {claimed['coupon']['code']}""")
        return
    order = {"code": claimed["coupon"]["code"], "order_id": f"demo-{int(time.time())}", "order_amount_cents": 4200,
             "till_id": "till-1"}
    for attempt in ("redeem", "redeem again (the till retried)"):
        _show(attempt, *http("POST", f"{api}/pos/demo/stores/sz-futian/redemptions", order, pos,
                             headers={"Idempotency-Key": order["order_id"]}))


def cmd_campaign(args) -> None:
    """The shopper accepts the brand's subscribe message in the mini-program; the brand schedules a
    campaign to every Shenzhen member --delay seconds from now. The local Scheduler fires it on time;
    with --wait, progress is printed until the run completes."""
    state = _state()
    api, admin = state["api_url"], state["admin_key"]
    session = _mp_shopper(state, "demo", args.openid, None, "S1")
    status, credits = http("POST", f"{api}/mp/demo/me/subscriptions", {"accepted": [DEMO_SUBSCRIBE_TEMPLATE]},
                           session)
    _show("subscribe credit", status, credits)
    at = (datetime.now(timezone.utc) + timedelta(seconds=args.delay)).isoformat()
    status, campaign = http("POST", f"{api}/admin/demo/campaigns", {
        # one demo shopper: no control group (the default 5 % holdout could hold them out)
        "name": "今日特价 daily special", "audience": {"tags_any": ["shenzhen"], "holdout_percent": 0},
        "message": {"medium": "mp_subscribe", "template_id": DEMO_SUBSCRIBE_TEMPLATE, "page": "pages/special/index",
                    "data": {"thing1": {"value": "Oolong milk tea"}, "amount2": {"value": "¥9.9"}}},
        "schedule": {"at": at}}, admin)
    _show("campaign", status, campaign)
    if status != 201:
        raise SystemExit(1)
    url = f"{api}/admin/demo/campaigns/{campaign['campaign_id']}"
    if not args.wait:
        print(f"""
It fires at {campaign['schedule']['at']}. Watch it (or run this command with --wait):
  curl -s -H "Authorization: Bearer {admin}" {url}
  curl -s {state['wechat_url']}/__sim/sent""")
        return
    _wait_for_campaign(url, admin, fires_at=datetime.fromisoformat(campaign["schedule"]["at"]),
                       timeout=args.delay + args.timeout)


def _wait_for_campaign(url: str, admin: str, fires_at, timeout: float, every: float = 2.0) -> None:
    """Print the campaign's state and counts whenever they change, until its run completes."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        status, campaign = http("GET", url, None, admin)
        if status != 200:
            raise SystemExit(f"GET {url} → {status} {campaign}")
        stats, run = campaign["stats"], campaign.get("run") or {}
        if campaign["state"] == "scheduled" and not run:
            left = (fires_at - datetime.now(timezone.utc)).total_seconds()
            # a line every 10 s, then every poll for the last ten seconds
            line = f"scheduled: fires in {max(0, math.ceil(left / 10) * 10 if left > 10 else math.ceil(left))} s"
        else:
            line = (f"{campaign['state']}: sent {stats['sent']} of {stats['targeted']} targeted, "
                    f"skipped {sum(stats['skipped'].values())}, failed {stats['failed']}")
        if line != last:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
        last = line
        if campaign["state"] in ("completed", "cancelled") or run.get("completed_at"):
            if stats["failed_reasons"]:
                print(f"failed: {json.dumps(stats['failed_reasons'])}")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the campaign has not completed after {timeout:.0f} s (state {campaign['state']}); "
                             "is the pump running? (`make run --verbose` logs every request)")
        time.sleep(every)


def _aws_for(state: dict):
    """The local stack's botocore clients (chalicelib.aws) pointed at the emulator `make run` started."""
    from siyu_dev.stack import LOCAL_ENV
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["AWS_ENDPOINT_URL"] = state["aws_url"]
    from chalicelib import aws
    return aws


def _drain_tap(state: dict, wait: int = 0) -> list[dict]:
    """Move every event waiting on the bus tap queue into EVENTS_FILE (this command is the tap's only
    reader, so the file is the bus's history for this run); the new events, oldest first."""
    import botocore.exceptions
    sqs = _aws_for(state).client("sqs")
    url, new = state["tap_queue_url"], []
    try:
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                      WaitTimeSeconds=wait if not new else 0).get("Messages", [])
            if not got:
                break
            batch = sorted((json.loads(m["Body"]) for m in got), key=lambda e: e.get("time", ""))
            with EVENTS_FILE.open("a") as log:       # kept before the queue forgets them
                for event in batch:
                    log.write(json.dumps(event, ensure_ascii=False) + "\n")
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(got)])
            new += batch
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError) as err:
        raise SystemExit(f"cannot reach the AWS emulator at {state['aws_url']} ({err}); {NOT_RUNNING}") from None
    return new


def _print_event(event: dict) -> None:
    print(event.get("time", ""), event["detail-type"], json.dumps(event["detail"], ensure_ascii=False), flush=True)


def cmd_events(args) -> None:
    """Print the latest domain events that reached the bus (every event siyu publishes is copied to a
    local tap queue); with --follow, keep printing new ones as they arrive."""
    state = _state()
    _drain_tap(state)
    seen = [json.loads(line) for line in EVENTS_FILE.read_text().splitlines() if line.strip()] \
        if EVENTS_FILE.exists() else []
    for event in seen[-args.last:] if args.last else seen:
        _print_event(event)
    if not seen and not args.follow:
        print("no events yet")
    if len(seen) > args.last > 0:
        print(f"({len(seen) - args.last} earlier events not shown: --last 0 shows them all)")
    if args.follow:
        print("— following: new events appear below (Ctrl-C stops) —", flush=True)
    while args.follow:
        for event in _drain_tap(state, wait=5):
            _print_event(event)


def cmd_platform_key(args) -> None:
    """Register a new platform key in a deployed stack's table, with the AWS credentials and region
    of the environment (or a profile). The key is printed once; the table keeps only its hash."""
    import botocore.exceptions
    import botocore.session
    table = args.table or os.environ.get("SIYU_TABLE")
    if args.region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region
    probe = botocore.session.get_session()
    region = args.region or os.environ.get("AWS_REGION") or probe.get_config_variable("region")
    missing = []
    if not table:
        missing.append("the table: --table <MainTableName output of the stack> (or SIYU_TABLE)")
    if not region:
        missing.append("the region: --region cn-north-1 (or AWS_REGION, or a profile's region)")
    if probe.get_credentials() is None:
        missing.append("AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an SSO login")
    if missing:
        raise SystemExit("platform-key needs:\n  " + "\n  ".join(missing))
    os.environ["SIYU_TABLE"] = table
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    from chalicelib import aws
    from chalicelib.services.auth import new_key
    from chalicelib.storage import tenancy
    try:
        aws.client("dynamodb").describe_table(TableName=table)
        key = new_key("platform")
        tenancy.create_platform_key(key, datetime.now(timezone.utc))
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            raise SystemExit(f"no table {table!r} in {region}: use the stack's MainTableName output "
                             "and the region it was deployed to") from None
        raise SystemExit(f"AWS refused ({code}): {err}") from None
    except botocore.exceptions.BotoCoreError as err:
        raise SystemExit(f"could not reach DynamoDB in {region}: {err}") from None
    print(f"platform key (shown once, stored only as its SHA-256): {key}")


def cmd_code(args) -> None:
    """Print a channel's code as a shop would (made once through WeChat's API, kept in S3), save the PNG,
    scan it with a shopper's phone (the simulator sends WeChat's callback) and show the member siyu made,
    attributed to the code's store, guide and channel. --pdf also saves the store's printable sheet."""
    from siyu_dev import code_cmd
    code_cmd.run(args, http=http, state=_state(), out_dir=STATE_FILE.parent)


def _command(sub, name: str, func, help: str, examples: str):
    """A subcommand whose --help shows what it does (the function's docstring) and examples."""
    doc = textwrap.fill(" ".join((func.__doc__ or help).split()), 100)
    parser = sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="examples:\n" + examples)
    parser.set_defaults(func=func)
    return parser


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m siyu_dev", description=__doc__.split("\n\n")[0],
                                     epilog="examples:\n" + __doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    py = "  .venv/bin/python -m siyu_dev"
    run = _command(sub, "run", cmd_run, "start the local stack with a demo brand",
                   f"{py} run\n  SIYU_API_PORT=8001 SIYU_AWS_PORT=4567 SIYU_WECHAT_PORT=8901 {py} run   # a second stack")
    run.add_argument("--verbose", action="store_true", help="log every request")
    scan = _command(sub, "scan", cmd_scan, "simulate a shopper scanning a channel code",
                    f"{py} scan --scene S1 --openid o_demo_shopper --unionid u_demo_shopper\n"
                    f"{py} scan --event SCAN --scene S2 --openid o_demo_shopper     # a follower scans again\n"
                    f"{py} scan --app mp --scene S2 --openid o_mp_demo --unionid u_demo_shopper\n"
                    f"{py} scan --app wecom --scene S1 --external-userid wm_demo_1 --guide zhangsan")
    scan.add_argument("--brand", default="demo")
    scan.add_argument("--app", choices=["oa", "mp", "wecom"], default="oa",
                      help="official account (default), mini-program or WeCom")
    scan.add_argument("--scene", default=None, help="the channel code's scene (S1, S2 in the demo brand)")
    scan.add_argument("--openid", default="o_demo_shopper")
    scan.add_argument("--unionid", default=None)
    scan.add_argument("--external-userid", default="wm_demo_shopper")
    scan.add_argument("--guide", default="zhangsan", help="WeCom UserID of the guide the shopper adds")
    scan.add_argument("--event", choices=["subscribe", "SCAN"], default="subscribe",
                      help="OA: subscribe (first follow) or SCAN (already a follower)")
    scan.add_argument("--mode", choices=["plain", "compat", "safe"], default="safe",
                      help="the OA's message encryption mode (default: safe, AES-encrypted)")
    coupon = _command(sub, "coupon", cmd_coupon, "define a coupon, claim it in the mini-program, redeem it at the till",
                      f"{py} coupon\n{py} coupon --openid o_someone_else")
    coupon.add_argument("--openid", default="o_coupon_demo")
    coupon.add_argument("--at-the-till", action="store_true",
                        help="stop before redeeming: print the member code to type into the console's till")
    campaign = _command(sub, "campaign", cmd_campaign,
                        "grant a subscribe credit and schedule a campaign to Shenzhen members",
                        f"{py} campaign --wait              # fires in a minute; prints progress until it completes\n"
                        f"{py} campaign --delay 10 --wait")
    campaign.add_argument("--openid", default="o_campaign_demo")
    campaign.add_argument("--delay", type=int, default=60, help="seconds from now to the fire (default 60)")
    campaign.add_argument("--wait", action="store_true", help="print progress until the run completes")
    campaign.add_argument("--timeout", type=int, default=120,
                          help="with --wait: seconds after the fire to give up (default 120)")
    events = _command(sub, "events", cmd_events, "print the latest domain events seen on the bus",
                      f"{py} events\n{py} events --last 5 --follow\n{py} events --last 0        # every event of this run")
    events.add_argument("--last", type=int, default=20, help="how many of the latest events to print (0: all)")
    events.add_argument("--follow", "-f", action="store_true", help="then print new events as they arrive (Ctrl-C stops)")
    from siyu_dev import guide_cli
    guide_cli.register(sub, _command, py)
    from siyu_dev import order_demo
    order_demo.add_parser(sub, _command)
    pk = _command(sub, "platform-key", cmd_platform_key, "register a new platform key in a deployed stack",
                  f"{py} platform-key --region cn-north-1 --table siyu-prod-main\n"
                  f"  AWS_PROFILE=siyu-deploy {py} platform-key --table siyu-prod-main")
    pk.add_argument("--table", default=None, help="the MainTableName output of the stack (or SIYU_TABLE)")
    pk.add_argument("--region", default=None, help="the stack's region (or AWS_REGION, or the profile's region)")
    code = _command(sub, "code", cmd_code, "print a channel's code and scan it with a shopper's phone",
                    f"{py} code --scene S1 --app oa --openid o_printed_demo --pdf sz-futian\n"
                    f"{py} code --scene S2 --app mp --openid o_mp_printed\n"
                    f"{py} code --scene S1 --app wecom --external-userid wm_printed_demo")
    code.add_argument("--brand", default="demo")
    code.add_argument("--scene", default="S1")
    code.add_argument("--app", choices=["oa", "mp", "wecom"], default="oa")
    code.add_argument("--openid", default="o_printed_demo")
    code.add_argument("--unionid", default=None)
    code.add_argument("--external-userid", default="wm_printed_demo")
    code.add_argument("--pdf", default=None, metavar="STORE_ID", help="also save this store's printable sheet")
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
