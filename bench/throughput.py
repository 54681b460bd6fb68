"""Sender throughput against its bound C/L, with the AWS emulator and the WeChat simulator each in a
process of its own (bench.servers), so the figure measures the sender, not three servers sharing one
interpreter: in one process the emulator's DynamoDB work and the simulator's answers took the GIL
from the sender's pool (0.39-0.53x C/L there).

The bench process holds what one Lambda container of handlers.send holds: the handler, its chunk
coordinators and its pool of C WeChat calls, fed from the real send queue as the event source
mapping feeds it (bench.campaigns.Poller). The audience and the campaign are bench.campaigns' (every
member holds a subscribe credit, so every recipient is claimed, sent and finalized through the
ledger); the simulator answers each send after L ms. Three fires, credits granted again before each;
the figure is each fire's sender phase (first receive to empty queue), min and median. The sender
runs with none of the other benches' botocore hooks (bench.counting, bench.campaigns.METER), as a
deployed container does (measured with cProfile over a fire, they took under 1% of its CPU).
"""
from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone

RUNS = 3


def grant_credits(openids, template: str) -> None:
    """One subscribe credit per member again, as bench.campaigns.seed_audience leaves them (the
    previous fire consumed them)."""
    from chalicelib.storage.campaigns import credit_key
    from chalicelib.storage.models import SubscribeCredit
    now = datetime.now(timezone.utc)
    with SubscribeCredit.batch_write() as batch:
        for openid in openids:
            batch.save(SubscribeCredit(*credit_key("demo", openid, template), brand_id="demo", openid=openid,
                                       template_id=template, credits=1, granted=1, last_source="api",
                                       last_granted_at=now.timestamp(), echo_open=True))


def one_fire(stack, recipients: int) -> dict:
    """Plan, then send, one campaign fire; the sender phase timed, every WeChat call's span kept."""
    from bench.campaigns import SEND_API, CallClock, Poller, create_campaign, sim
    from chalicelib.services import campaigns
    campaign = create_campaign()
    stack.scheduler.fire(campaigns.schedule_name("demo", campaign["campaign_id"]))
    Poller().drain("plan")
    calls_before = sim(stack, "GET", "calls").get(SEND_API, 0)
    poller = Poller()
    with CallClock() as clock:
        started = time.monotonic()
        poller.drain("send")
        seconds = time.monotonic() - started
    state = campaigns.get_campaign("demo", campaign["campaign_id"])
    if state["state"] != "completed" or state["stats"]["sent"] != recipients:
        raise RuntimeError(f"the campaign did not deliver to everyone: {state['state']} {state['stats']}")
    wechat_calls = sim(stack, "GET", "calls").get(SEND_API, 0) - calls_before
    if wechat_calls != recipients:
        raise RuntimeError(f"{wechat_calls} WeChat calls for {recipients} recipients")
    return {"seconds": seconds, "calls": clock.spans, "spans": poller.spans, "chunks": poller.sizes}


def breakdown(fire: dict, recipients: int, concurrency: int) -> dict:
    """Where a fire's time went: pool occupancy (WeChat calls in flight / C over the sender phase),
    mean call time, and each invocation's lead (before its first call) and tail (after its last)."""
    seconds, calls = fire["seconds"], fire["calls"]
    busy = sum(end - start for start, end in calls)
    leads, tails = [], []
    for start, end in fire["spans"]:
        inside = [c for c in calls if start <= c[0] <= end]
        if inside:
            leads.append(min(c[0] for c in inside) - start)
            tails.append(end - max(c[1] for c in inside))
    return {"rate": recipients / seconds, "occupancy": busy / seconds / concurrency,
            "call_ms": busy / len(calls) * 1000, "lead_ms": statistics.mean(leads) * 1000,
            "tail_ms": statistics.mean(tails) * 1000, "invocations": len(fire["spans"])}


def run() -> list[tuple[str, str]]:
    from bench.campaigns import (CONCURRENCY, LATENCY_MS, MEMBERS, SEND_API, TEMPLATE, lone_call_ms, seed_audience,
                                 set_concurrency, sim)
    from bench.servers import serving
    # No request counting or metering here (bench.counting, bench.campaigns.METER: botocore hooks on
    # every call): no figure of this bench uses them, so the measured sender runs without them. The
    # one probe left is CallClock's timestamp pair per WeChat call.
    from chalicelib import resources
    from siyu_dev.stack import LocalStack
    with serving("aws") as aws_url, serving("wechat") as wechat_url:
        stack = LocalStack(api_port=0, serve_api=False, run_pump=False, aws_url=aws_url, wechat_url=wechat_url).start()
        try:
            from chalicelib.services import admin
            from siyu_dev.__main__ import DEMO_BRAND, DEMO_STORES
            admin.create_brand(DEMO_BRAND)
            for store in DEMO_STORES:
                admin.create_store("demo", store)
            started = time.monotonic()
            openids = seed_audience(MEMBERS)
            seeded = time.monotonic() - started
            set_concurrency(CONCURRENCY)
            sim(stack, "POST", "faults", {"api": SEND_API, "errcode": None, "rate": 0.0, "latency_ms": LATENCY_MS})
            alone_ms = lone_call_ms()          # also warms the container: brand, secrets, access token
            fires = []
            for i in range(RUNS):
                if i:
                    grant_credits(openids, TEMPLATE)
                fires.append(one_fire(stack, MEMBERS))
        finally:
            stack.stop()
    bound = CONCURRENCY / (LATENCY_MS / 1000)
    runs = sorted((breakdown(f, MEMBERS, CONCURRENCY) for f in fires), key=lambda b: b["rate"])
    median = runs[len(runs) // 2]
    chunks = fires[0]["chunks"]
    return [
        (f"sender throughput, C={CONCURRENCY} WeChat calls in flight, simulator latency L={LATENCY_MS} ms on "
         f"{SEND_API}; AWS emulator and WeChat simulator each in a process of their own; {RUNS} fires of "
         f"{MEMBERS:,} recipients with credits ({len(chunks)} chunks of {min(chunks)}-{max(chunks)}, handlers.send "
         f"at batch {resources.queue('send').batch_size}, {median['invocations']} invocations each)",
         f"min {runs[0]['rate'] / bound:.2f} / median {median['rate'] / bound:.2f} x C/L "
         f"({runs[0]['rate']:.0f} / {median['rate']:.0f} sends/s of {bound:.0f}/s); goal >= 0.8"),
        ("sender throughput: where the rest of C/L goes (median fire)",
         f"pool occupancy {median['occupancy']:.2f} x L / mean call {LATENCY_MS / median['call_ms']:.2f} "
         f"(mean call {median['call_ms']:.0f} ms under load, {alone_ms:.0f} ms alone); per invocation "
         f"{median['lead_ms']:.0f} ms before its first WeChat call (chunk prefetch + first claim) and "
         f"{median['tail_ms']:.0f} ms after its last (finalize + completion check)"),
        ("sender throughput: setup, not in the figures", f"{MEMBERS:,} members + credits seeded in {seeded:.0f} s"),
    ]
