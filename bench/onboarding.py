"""Foundation figures: cold start, callback CPU, AWS requests per onboarding."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "cn-north-1",
       "AWS_DEFAULT_REGION": "cn-north-1", "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONPATH": str(ROOT)}

BASELINE = ("import time; t = time.perf_counter(); import boto3; boto3.client('dynamodb'); "
            "print(time.perf_counter() - t)")
# What a cold API container does before its first callback can touch storage: import the app, then
# make the clients that request needs (DynamoDB through PynamoDB, SSM for the brand's secrets).
OURS = ("import time; t = time.perf_counter(); import app; from chalicelib.storage.models import Item; "
        "Item._get_connection().connection.client; from chalicelib import aws; aws.client('ssm'); "
        "print(time.perf_counter() - t)")
# The same as deployed (infra/: tracing ACTIVE): in Lambda, with a sampled trace header, the first
# request creates the tracer (X-Ray SDK imported, botocore patched) and opens its subsegment.
OURS_TRACED = ("import time; t = time.perf_counter(); import app; from chalicelib.observability import traced; "
               "from chalicelib.storage.models import Item; from chalicelib import aws\n"
               "with traced('## request', path='/wechat/{brand_id}/oa'):\n"
               "    Item._get_connection().connection.client; aws.client('ssm')\n"
               "print(time.perf_counter() - t)")


def _traced_env(daemon: str) -> dict:
    """The environment of a traced Lambda invocation (what Lambda sets when tracing is ACTIVE)."""
    env = {k: v for k, v in ENV.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    return {**env, "AWS_LAMBDA_FUNCTION_NAME": "siyu-bench", "LAMBDA_TASK_ROOT": str(ROOT),
            "AWS_XRAY_DAEMON_ADDRESS": daemon, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}


def _time(code: str, env: dict = ENV) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start(rounds: int = 9) -> tuple[float, float, float]:
    """Median seconds of: `import boto3` + one client, our cold start untraced, and traced as deployed."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:       # where segments go (and stay)
        daemon.bind(("127.0.0.1", 0))
        traced_env = _traced_env("127.0.0.1:%d" % daemon.getsockname()[1])
        _time(BASELINE), _time(OURS), _time(OURS_TRACED, traced_env)      # warm the OS file cache and .pyc files
        base, ours, traced = [], [], []
        for _ in range(rounds):                    # interleaved, so machine noise hits all alike
            base.append(_time(BASELINE))
            ours.append(_time(OURS))
            traced.append(_time(OURS_TRACED, traced_env))
    return statistics.median(base), statistics.median(ours), statistics.median(traced)


def callback_cpu(rounds: int = 21, events: int = 300) -> tuple[float, float, float]:
    """CPU µs per safe-mode OA subscribe for siyu and for wechatpy 1.8.18 on the same callback, and
    their ratio, measured in one run: alternating rounds of `events` callbacks each, timed in this
    process's CPU time (what other processes on the shared cores do is not counted); the medians of
    the rounds, and the median of the rounds' ratios.

    siyu: both signatures and the timestamp window, decrypt with the receive-id check, parse, dedupe
    key and route (the action the message asks for). wechatpy (requirements-bench.txt):
    WeChatCrypto.decrypt_message (msg_signature, decrypt, app id check) and parse_message (the typed
    event), with its WeChatCrypto made once, as siyu's is."""
    try:
        from wechatpy import parse_message
        from wechatpy.crypto import WeChatCrypto
    except ImportError:
        raise SystemExit("bench.onboarding needs wechatpy: pip install -r requirements-bench.txt "
                         "(`make bench` does)") from None
    from chalicelib.services.callbacks import open_callback, route
    from chalicelib.services.wechat_apps import App
    from siyu_dev import phone
    app = App("bench", "oa", "wxbench000000001", "secret", "benchToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    now = int(time.time())
    msg = phone.oa_subscribe(app_username="gh_bench", openid="o_bench_shopper", scene="S1", create_time=now)
    cb = phone.build_callback(msg, token=app.token, receive_id=app.app_id, encoding_aes_key=app.encoding_aes_key,
                              mode="safe", openid="o_bench_shopper", timestamp=now)
    query, body = cb.query, cb.body
    theirs = WeChatCrypto(app.token, app.encoding_aes_key, app.app_id)

    def siyu():
        return route("oa", open_callback(app, query, body, now).msg)

    def wechatpy():
        return parse_message(theirs.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"]))

    ours, reference = siyu(), wechatpy()
    assert ours.name == "touch" and ours.args["scene"] == "S1" and ours.args["shopper"].oa == "o_bench_shopper"
    assert reference.event == "subscribe_scan" and reference.scene_id == "S1" and reference.source == "o_bench_shopper"

    def per_event(handle) -> float:
        start = time.process_time()
        for _ in range(events):
            handle()
        return (time.process_time() - start) / events * 1e6

    per_event(siyu), per_event(wechatpy)           # warm both
    siyu_rounds, wechatpy_rounds = [], []
    for _ in range(rounds):
        siyu_rounds.append(per_event(siyu))
        wechatpy_rounds.append(per_event(wechatpy))
    ratio = statistics.median(s / w for s, w in zip(siyu_rounds, wechatpy_rounds))
    return statistics.median(siyu_rounds), statistics.median(wechatpy_rounds), ratio


def requests_per_onboarding() -> dict[str, tuple[int, dict]]:
    """AWS requests made while answering one callback, in a warm container (brand, secrets and the
    WeChat token already cached); the outbox publish that follows on the stream is counted apart."""
    from bench import counting
    counting.install()
    from siyu_dev.stack import LocalStack
    stack = LocalStack(api_port=0, aws_port=0, wechat_port=0, serve_api=False, run_pump=False).start()
    try:
        import requests
        from chalicelib.services import admin, callbacks, mp_sessions, onboarding
        from siyu_dev import phone
        from siyu_dev.__main__ import DEMO_BRAND, DEMO_CHANNELS, DEMO_STORES, DEMO_GUIDES
        admin.create_brand(DEMO_BRAND)
        for store in DEMO_STORES:
            admin.create_store("demo", store)
        for guide in DEMO_GUIDES:
            admin.create_guide("demo", guide)
        for channel in DEMO_CHANNELS:
            admin.create_channel("demo", channel)
        oa = DEMO_BRAND["wechat"]["oa"]

        def post(openid: str, event: str, t: int):
            build = phone.oa_subscribe if event == "subscribe" else phone.oa_scan
            msg = build(app_username="gh_demo", openid=openid, scene="S1", create_time=t)
            cb = phone.build_callback(msg, token=oa["token"], receive_id=oa["app_id"],
                                      encoding_aes_key=oa["encoding_aes_key"], mode="safe", openid=openid,
                                      timestamp=t)
            return callbacks.receive("demo", "oa", cb.query, cb.body, now=t)

        t = int(time.time())
        post("o_warmup", "subscribe", t)          # warm caches: brand, secrets, WeChat token
        figures = {}
        for label, openid, unionid in (("OA first scan (unionid known to WeChat)", "o_new_1", "u_new_1"),
                                       ("OA first scan (no unionid)", "o_new_2", None)):
            requests.post(f"{stack.wechat_url}/__sim/users", json={"app_id": oa["app_id"], "openid": openid,
                                                                  "unionid": unionid}, timeout=5)
            with counting.Window() as w:
                post(openid, "subscribe", t + 1)
            figures[label] = (w.total, dict(w.by_operation))
        with counting.Window() as w:
            post("o_new_1", "SCAN", t + 2)
        figures["OA repeat scan"] = (w.total, dict(w.by_operation))
        with counting.Window() as w:
            post("o_new_1", "SCAN", t + 2)
        figures["WeChat retry of a handled callback"] = (w.total, dict(w.by_operation))

        mp = DEMO_BRAND["wechat"]["mp"]
        code = requests.post(f"{stack.wechat_url}/__sim/codes", json={"openid": "o_mp_1", "unionid": "u_mp_1",
                                                                    "app_id": mp["app_id"]}, timeout=5).json()["code"]
        session = mp_sessions.verify("demo", {"authorization": "Bearer " + mp_sessions.login("demo", code)["session"]})
        with counting.Window() as w:
            onboarding.scan_from_mini_program("demo", session, {"scene": "S2"})
        figures["mini-program first scan"] = (w.total, dict(w.by_operation))
        with counting.Window() as w:
            onboarding.scan_from_mini_program("demo", session, {"scene": "S2"})
        figures["mini-program repeat scan"] = (w.total, dict(w.by_operation))
        from siyu_dev.pump import Pump
        pump = Pump()
        with counting.Window() as w:
            pump.start()
            pump.idle(timeout=20)
            pump.stop()
        figures["outbox publish, all of the above (async)"] = (w.total, dict(w.by_operation))
        return figures
    finally:
        stack.stop()


def run() -> list[tuple[str, str]]:
    base, ours, traced = cold_start()
    rows = [("cold start: import app + first request's clients (DynamoDB, SSM), tracing off",
             f"{ours * 1000:.0f} ms = {ours / base:.2f}x `import boto3` + one client ({base * 1000:.0f} ms); goal <= 1.5x"),
            ("cold start as deployed: the same with X-Ray tracing on, sampled trace header",
             f"{traced * 1000:.0f} ms = {traced / base:.2f}x `import boto3` + one client; goal <= 1.5x")]
    siyu, wechatpy, ratio = callback_cpu()
    rows += [("callback CPU: safe-mode subscribe, verify + decrypt + parse + route (siyu)", f"{siyu:.0f} µs/event"),
             ("callback CPU: the same callback through wechatpy 1.8.18 (decrypt_message + parse_message)",
              f"{wechatpy:.0f} µs/event"),
             ("callback CPU: siyu / wechatpy, same run", f"{ratio:.2f}x; goal <= 0.5x")]
    for label, (total, ops) in requests_per_onboarding().items():
        detail = ", ".join(f"{op.split('.', 1)[1]} {n}" for op, n in sorted(ops.items()))
        rows.append((f"AWS requests: {label}", f"{total} ({detail})"))
    return rows
