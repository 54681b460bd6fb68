"""Campaign figures: AWS requests per 1,000 recipients (planner + sender, by service and operation)
and the projected AWS bill per million deliveries (sender throughput against C/L: bench.throughput).

One campaign fire runs end to end in this process on the emulator: the schedule's fire message is
put on the plan queue (as EventBridge Scheduler does), then the Lambda handlers (handlers.plan,
handlers.send) are fed from the real plan and send queues as an event source mapping feeds them
(batch sizes from chalicelib.resources). Every member holds a subscribe credit, so every recipient
is claimed, sent and finalized through the ledger; the WeChat simulator answers each subscribe
send after a fixed latency. DynamoDB request units are counted per request from what was sent and
what came back (item sizes by DynamoDB's own rules), SQS requests per 64 KB of payload.
"""
from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

MEMBERS = 2_800              # 16 audience shards of 147-194: one chunk each, near the planner's 200
TEMPLATE = "TPL_bench_special"
SEND_API = "cgi-bin/message/subscribe/send"
LATENCY_MS = 200             # the simulator's answer time for a subscribe send (WeChat dominates, as on AWS)
CONCURRENCY = 32             # the sender's pool: WeChat calls in flight per container
SEED = 20240601

# us-east-1 on-demand list prices, USD (China regions are priced in CNY and differ)
PRICE_WRU = 0.625 / 1e6              # DynamoDB on-demand write request unit (<= 1 KB; transactional: 2 per item)
PRICE_RRU = 0.125 / 1e6              # DynamoDB on-demand read request unit (<= 4 KB strongly consistent, 2 eventual)
PRICE_SQS = 0.40 / 1e6               # SQS standard, per request; each 64 KB of payload is one request
PRICE_SCHEDULER = 1.00 / 1e6         # EventBridge Scheduler, per invocation
PRICE_LAMBDA_GB_S = 0.0000133334     # Lambda arm64 (infra/ deploys Graviton), per GB-second
PRICE_LAMBDA_REQUEST = 0.20 / 1e6    # Lambda, per invocation
SQS_CHUNK = 64 * 1024


# ---- DynamoDB request units and SQS billed requests, from the calls themselves ----------------

def _value_size(value: dict) -> int:
    """Bytes of one attribute value as DynamoDB sizes it (names are added by the caller)."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(_value_size({"N": n}) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + _value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(e) for k, e in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict | None) -> int:
    return sum(len(k.encode()) + _value_size(v) for k, v in (item or {}).items())


class Meter:
    """Records every DynamoDB and SQS call (parameters and answer) made while `on`, on every botocore
    client created after install() (PynamoDB's included), to price it afterwards."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[tuple[str, str, dict, dict]] = []
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        import botocore.session
        original = botocore.session.Session.create_client
        meter = self

        def create_client(session, *args, **kwargs):
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build", meter._params)
            client.meta.events.register("after-call", meter._after)
            return client
        botocore.session.Session.create_client = create_client
        self._installed = True

    def detach(self, client) -> None:
        client.meta.events.unregister("before-parameter-build", self._params)
        client.meta.events.unregister("after-call", self._after)

    def _params(self, params, model, context, **_kwargs) -> None:
        context["bench_params"] = params

    def _after(self, parsed, model, context, **_kwargs) -> None:
        if self.on:
            with self._lock:
                self.calls.append((model.service_model.endpoint_prefix, model.name,
                                   context.get("bench_params") or {}, parsed or {}))


def _key_of(item_or_key: dict) -> tuple[str, str]:
    return item_or_key["pk"]["S"], item_or_key["sk"]["S"]


def _written(calls) -> set[tuple[str, tuple[str, str]]]:
    """(table, key) of every item an UpdateItem / DeleteItem / ConditionCheck touched: their write
    units depend on the item, not on the request."""
    keys = set()
    for service, op, params, _parsed in calls:
        if service != "dynamodb":
            continue
        if op in ("UpdateItem", "DeleteItem"):
            keys.add((params["TableName"], _key_of(params["Key"])))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                if kind != "Put":
                    keys.add((body["TableName"], _key_of(body["Key"])))
    return keys


INDEXED: set = set()          # written items that are in gsi1 (projection ALL): their index write is billed too


def item_sizes(keys) -> dict[tuple[str, tuple[str, str]], int]:
    """Sizes of those items now (after the run), read in BatchGetItems of 100."""
    from chalicelib import aws
    ddb = aws.client("dynamodb")
    sizes = {}
    keys = sorted(keys)
    for i in range(0, len(keys), 100):
        by_table: dict[str, list] = {}
        for table, (pk, sk) in keys[i:i + 100]:
            by_table.setdefault(table, []).append({"pk": {"S": pk}, "sk": {"S": sk}})
        request = {t: {"Keys": k} for t, k in by_table.items()}
        while request:
            answer = ddb.batch_get_item(RequestItems=request)
            for table, items in answer["Responses"].items():
                for item in items:
                    sizes[(table, _key_of(item))] = item_size(item)
                    if "gsi1pk" in item and "gsi1sk" in item:
                        INDEXED.add((table, _key_of(item)))
            request = answer.get("UnprocessedKeys") or {}
    return sizes


def _written_kind(key: tuple[str, str] | None, put: bool) -> str:
    """What a written item is, from its key (storage.models' key table)."""
    pk, sk = key or ("", "")
    if "#DLV#" in pk:
        return "delivery group"
    if "#CREDIT#" in pk:
        return "claim on credit item"
    if "#REACH#" in pk:
        return "claim on reach item"
    if sk.startswith("STATS#"):
        return "tallies"
    if "#CAMP#" in pk or sk.startswith("CAMPAIGN#"):
        return "run/shards/campaign"
    if pk.startswith("OUT#"):
        return "outbox"
    if "#C#" in pk:
        return "coupon"
    if "#CLAIMS#" in pk:
        return "member's coupon limit"
    if "#SCORE#" in pk:
        return "scoreboard counters"
    if "#STOCK#" in pk:
        return "template stock/issued"
    if "#ISSUE#" in pk:
        return "issue key"
    return "other"


def units(calls, sizes) -> dict:
    """Billed units of the recorded calls: DynamoDB WRU / RRU (by operation; WRU also by item kind),
    SQS requests."""
    out = {"wru": 0.0, "rru": 0.0, "sqs": 0, "by_op": {}, "by_kind": {}, "largest_item": 0}

    def write(table: str, key, put_item: dict | None = None, transactional: bool = False) -> float:
        size = item_size(put_item) if put_item is not None else sizes.get((table, key), 0)
        out["largest_item"] = max(out["largest_item"], size)
        wru = max(1, math.ceil(size / 1024)) * (2 if transactional else 1)
        kind = _written_kind(key, put_item is not None)
        out["by_kind"][kind] = out["by_kind"].get(kind, 0) + wru
        indexed = ("gsi1pk" in put_item and "gsi1sk" in put_item) if put_item is not None \
            else (table, key) in INDEXED
        if indexed:       # the index entry (all attributes projected), billed like the table's write
            gsi = max(1, math.ceil(size / 1024)) * (2 if transactional else 1)
            out["by_kind"]["gsi1 (index) entry"] = out["by_kind"].get("gsi1 (index) entry", 0) + gsi
            wru += gsi
        return wru

    def read(size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    for service, op, params, parsed in calls:
        wru = rru = 0.0
        if service == "sqs":
            if op in ("SendMessageBatch", "SendMessage"):
                bodies = [e["MessageBody"] for e in params["Entries"]] if op == "SendMessageBatch" \
                    else [params["MessageBody"]]
                out["sqs"] += max(1, math.ceil(sum(len(b.encode()) for b in bodies) / SQS_CHUNK))
            else:
                out["sqs"] += 1
            continue
        if service != "dynamodb":
            continue
        if op == "PutItem":
            wru = write(params["TableName"], _key_of(params["Item"]), params["Item"])
        elif op in ("UpdateItem", "DeleteItem"):
            wru = write(params["TableName"], _key_of(params["Key"]))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                if kind == "Put":
                    wru += write(body["TableName"], _key_of(body["Item"]), body["Item"], transactional=True)
                else:                               # Update, Delete, ConditionCheck: 2 units per item
                    wru += write(body["TableName"], _key_of(body["Key"]), transactional=True)
        elif op == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    if "PutRequest" in r:
                        wru += write(table, _key_of(r["PutRequest"]["Item"]), r["PutRequest"]["Item"])
                    else:
                        wru += write(table, _key_of(r["DeleteRequest"]["Key"]))
        elif op == "GetItem":
            rru = read(item_size(parsed.get("Item")), bool(params.get("ConsistentRead")))
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                found = parsed.get("Responses", {}).get(table, [])
                unprocessed = len(parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
                missing = len(request["Keys"]) - unprocessed - len(found)
                rru += sum(read(item_size(i), consistent) for i in found) + missing * read(0, consistent)
        elif op in ("Query", "Scan"):
            rru = read(sum(item_size(i) for i in parsed.get("Items", [])), bool(params.get("ConsistentRead")))
        out["wru"] += wru
        out["rru"] += rru
        wru0, rru0 = out["by_op"].get(op, (0.0, 0.0))
        out["by_op"][op] = (wru0 + wru, rru0 + rru)
    return out


METER = Meter()


# ---- the stack, the brand, the audience ---------------------------------------------------------

def _setup():
    from bench import counting
    counting.install()
    METER.install()
    from bench.servers import serving
    from siyu_dev.stack import LocalStack
    # the WeChat simulator in a process of its own (as bench.throughput has it): in this interpreter,
    # beside the emulator and the measured sender, a loaded machine starved it past the client's read
    # timeout, and a fire then ended with recipients `failed: outcome_unknown` (rightly never resent)
    wechat = serving("wechat")
    stack = LocalStack(api_port=0, aws_port=0, serve_api=False, run_pump=False,
                       wechat_url=wechat.__enter__()).start()
    stop = stack.stop

    def stop_both() -> None:
        try:
            stop()
        finally:
            wechat.__exit__(None, None, None)
    stack.stop = stop_both
    from chalicelib.services import admin
    from siyu_dev.__main__ import DEMO_BRAND, DEMO_STORES
    admin.create_brand(DEMO_BRAND)
    for store in DEMO_STORES:
        admin.create_store("demo", store)
    return stack


def seed_audience(count: int) -> list[str]:
    """`count` mini-program members written as a first touch commits them (one transaction each;
    their domain events left out), each holding one subscribe credit for TEMPLATE: the item one
    accepted popup leaves (storage.campaigns.record_subscriptions), written in BatchWriteItems to
    keep the setup short. Member ids and openids (28 characters, as WeChat's) come from a seeded
    generator, so the audience shards, and with them the chunks, are the same every run."""
    from chalicelib.domain.members import Shopper, Touch, plan_touch
    from chalicelib.ids import _ALPHABET
    from chalicelib.storage import members as member_store
    from chalicelib.storage.campaigns import credit_key
    from chalicelib.storage.models import SubscribeCredit
    rng = random.Random(SEED)
    member_ids = ["m_" + "".join(rng.choice(_ALPHABET) for _ in range(16)) for _ in range(count)]
    openids = ["o" + "".join(rng.choice(_ALPHABET + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") for _ in range(27))
               for _ in range(count)]
    now = datetime.now(timezone.utc)

    def one(i: int) -> None:
        at = (now - timedelta(days=1, seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        plan = plan_touch(brand_id="demo", shopper=Shopper(mp=openids[i]), found={},
                          touch=Touch("sz-futian", None, "S2", "receipt_qr", "mp", at), channel=None,
                          new_member_id=member_ids[i], subscribed=None)
        plan.events.clear()
        plan.tasks.clear()
        member_store.commit_touch("demo", plan, inbound=None, event="bench", now=now)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    with SubscribeCredit.batch_write() as batch:
        for openid in openids:
            batch.save(SubscribeCredit(*credit_key("demo", openid, TEMPLATE), brand_id="demo", openid=openid,
                                       template_id=TEMPLATE, credits=1, granted=1, last_source="api",
                                       last_granted_at=now.timestamp(), echo_open=True))
    return openids


def warm_container(stack) -> None:
    """What a warm sender container already holds: the brand, its secrets, the app's access token
    (fetched by a first send)."""
    lone_call_ms(rounds=1)


def set_concurrency(c: int) -> None:
    """The sender's pool size is read from SIYU_SEND_CONCURRENCY at import; set it and drop the pool."""
    from chalicelib.services import sending
    sending.CONCURRENCY = c
    with sending._pool_lock:
        made = sending._pools.pop("wechat-send", None)
        if made is not None:
            made.shutdown(wait=True)


# ---- feeding the handlers as an event source mapping does -------------------------------------

class Poller:
    """Receives a batch, invokes the handler with a Lambda-shaped SQS event, deletes what succeeded.
    Its own SQS client, kept out of siyu's counts; the SQS requests it makes are tallied here
    (each 64 KB of payload billed as one request; the last, empty receive left out, as idle polling
    is not per delivery), and the invocations' duration x memory as GB-s."""

    def __init__(self) -> None:
        import botocore.session
        from bench import counting
        from chalicelib import aws
        self.sqs = botocore.session.get_session().create_client("sqs", region_name=aws.region())
        if counting._installed:            # bench.throughput installs neither hook
            self.sqs.meta.events.unregister("before-send", counting._count)
        if METER._installed:
            METER.detach(self.sqs)
        self.requests: dict[str, int] = {}
        self.billed = 0
        self.invocations = 0
        self.gb_seconds = 0.0
        self.sizes: list[int] = []         # recipients per chunk message (send queue)
        self.spans: list[tuple[float, float]] = []     # each invocation's start and end (monotonic)

    def _bill(self, op: str, payload: int = 0) -> None:
        self.requests[op] = self.requests.get(op, 0) + 1
        self.billed += max(1, math.ceil(payload / SQS_CHUNK))

    def drain(self, key: str) -> None:
        """Until the queue is empty: what Lambda's poller does for that queue's consumer."""
        import os
        from chalicelib import aws, resources
        from siyu_dev.pump import lambda_context, resolve
        spec = resources.queue(key)
        url = os.environ[spec.env]
        handler = resolve(spec.handler)
        arn = f"arn:{aws.partition()}:sqs:{aws.region()}:000000000000:{url.rsplit('/', 1)[-1]}"
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(spec.batch_size, 10),
                                           WaitTimeSeconds=0, AttributeNames=["All"]).get("Messages", [])
            if not got:
                return
            self._bill("ReceiveMessage", sum(len(m["Body"].encode()) for m in got))
            self.sizes += [len(json.loads(m["Body"]).get("recipients", ())) for m in got]
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": aws.region()} for m in got]}
            started = time.monotonic()
            result = handler(event, lambda_context(f"siyu-bench-{key}", spec.consumer_timeout,
                                                   spec.consumer_memory)) or {}
            self.spans.append((started, time.monotonic()))
            self.gb_seconds += (time.monotonic() - started) * spec.consumer_memory / 1024
            self.invocations += 1
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            if failed:
                raise RuntimeError(f"{key} handler reported {len(failed)} failed messages; the bench expects none")
            self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
            self._bill("DeleteMessageBatch")


class CallClock:
    """Start and end of every WeChat call the sender makes (ChunkRun._call), to split the throughput
    ratio into pool occupancy (calls in flight / C) and call time (L / measured call time)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "CallClock":
        from chalicelib.services import sending
        self._original = original = sending.ChunkRun._call
        clock = self

        def timed(run, recipient):
            started = time.monotonic()
            try:
                return original(run, recipient)
            finally:
                with clock._lock:
                    clock.spans.append((started, time.monotonic()))
        sending.ChunkRun._call = timed
        return self

    def __exit__(self, *exc) -> None:
        from chalicelib.services import sending
        sending.ChunkRun._call = self._original


# ---- one campaign fire, end to end ------------------------------------------------------------

def create_campaign(**variant) -> dict:
    """The bench campaign; `variant` adds `limits`, `coupon_template_id` or an `audience` sample."""
    from chalicelib.services import campaigns
    body = {"name": "bench special", "message": {"medium": "mp_subscribe", "template_id": TEMPLATE,
                                                 "page": "pages/special/index",
                                                 "data": {"thing1": {"value": "10 off today"}}},
            "schedule": {"at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}}
    body.update(variant)
    # every recipient delivered: the cost is per delivery (a held-out member costs one mark, no send)
    body["audience"] = {"holdout_percent": 0, **(body.get("audience") or {})}
    return campaigns.create_campaign("demo", body)


def sim(stack, method: str, what: str, body=None):
    import requests
    r = requests.request(method, f"{stack.wechat_url}/__sim/{what}", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def fire_campaign(stack, recipients: int | None, **variant) -> dict:
    """Fire one campaign and run it to completion: the planner drains the plan queue, then the
    sender the send queue. Returns each phase's requests, calls, poller and duration. `recipients`
    None: a sampled variant, checked against its own targeted count."""
    from bench import counting
    from chalicelib.services import campaigns
    campaign = create_campaign(**variant)
    stack.scheduler.fire(campaigns.schedule_name("demo", campaign["campaign_id"]))   # Scheduler -> plan queue
    phases = {}
    for name, key in (("planner", "plan"), ("sender", "send")):
        poller = Poller()
        METER.calls = []
        METER.on = True
        with CallClock() as clock, counting.Window() as window:
            started = time.monotonic()
            poller.drain(key)
            elapsed = time.monotonic() - started
        METER.on = False
        phases[name] = {"window": window, "calls": METER.calls, "poller": poller, "seconds": elapsed,
                        "wechat": clock.spans}
    state = campaigns.get_campaign("demo", campaign["campaign_id"])
    expected = recipients if recipients is not None else state["stats"]["targeted"]
    if state["state"] != "completed" or state["stats"]["sent"] != expected:
        raise RuntimeError(f"the campaign did not deliver to everyone: {state['state']} {state['stats']}")
    return {"campaign": state, **phases}


# ---- the figures ------------------------------------------------------------------------------

def _per_thousand(n: float, recipients: int) -> str:
    value = n * 1000 / recipients
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def lone_call_ms(rounds: int = 5) -> float:
    """One subscribe send at a time through the sender's WeChat client: the latency a call sees
    when nothing else runs in this process."""
    from chalicelib.services import sending
    from chalicelib.services.wechat_apps import api_for, app_for
    from chalicelib.storage import tenancy
    api = api_for(app_for(tenancy.require_brand("demo"), "mp"), timeout=sending.SEND_TIMEOUT)
    started = time.monotonic()
    for _ in range(rounds):
        api.subscribe_send("o_bench_alone", TEMPLATE, {"thing1": {"value": "x"}})
    return (time.monotonic() - started) / rounds * 1000


def request_rows(result: dict, recipients: int) -> list[tuple[str, str]]:
    rows = []
    total: dict[str, int] = {}
    for phase in ("planner", "sender"):
        ops = result[phase]["window"].by_operation
        poller = result[phase]["poller"]
        by_service: dict[str, dict[str, int]] = {}
        for op, n in ops.items():
            service, name = op.split(".", 1)
            by_service.setdefault(service, {})[name] = n
            total[service] = total.get(service, 0) + n
        detail = "; ".join(f"{service} {_per_thousand(sum(names.values()), recipients)} ("
                           + ", ".join(f"{name} {_per_thousand(n, recipients)}" for name, n in sorted(names.items()))
                           + ")" for service, names in sorted(by_service.items()))
        polled = ", ".join(f"{op} {_per_thousand(n, recipients)}" for op, n in sorted(poller.requests.items()))
        rows.append((f"AWS requests per 1,000 recipients, {phase} (one fire to {recipients:,}: 16 audience shards of "
                     f"one page each, so the per-shard costs weigh more than at scale)",
                     f"{_per_thousand(result[phase]['window'].total, recipients)}: {detail}; "
                     f"besides, Lambda's SQS poller: {polled} ({poller.invocations} invocations)"))
    rows.append(("AWS requests per 1,000 recipients, planner + sender, by service (poller apart)",
                 ", ".join(f"{s} {_per_thousand(n, recipients)}" for s, n in sorted(total.items()))
                 + "; EventBridge Scheduler: 1 invocation per fire"))
    return rows


SCALE_INPUTS: dict = {}


def priced(result: dict, recipients: int):
    """A fire's bill per million deliveries: (costs by line, billed units, SQS requests, GB-s)."""
    calls = result["planner"]["calls"] + result["sender"]["calls"]
    billed = units(calls, item_sizes(_written(calls)))
    pollers = [result["planner"]["poller"], result["sender"]["poller"]]
    per_million = 1e6 / recipients
    wru, rru = billed["wru"] * per_million, billed["rru"] * per_million
    sqs = (billed["sqs"] + sum(p.billed for p in pollers)) * per_million
    gb_s = sum(p.gb_seconds for p in pollers) * per_million
    invocations = sum(p.invocations for p in pollers) * per_million
    costs = {"DynamoDB writes": wru * PRICE_WRU, "DynamoDB reads": rru * PRICE_RRU, "SQS": sqs * PRICE_SQS,
             "Scheduler": per_million * PRICE_SCHEDULER,           # one invocation per fire of `recipients`
             "Lambda": gb_s * PRICE_LAMBDA_GB_S + invocations * PRICE_LAMBDA_REQUEST}
    return costs, billed, sqs, gb_s


def cost_rows(result: dict, recipients: int) -> list[tuple[str, str]]:
    costs, billed, sqs, gb_s = priced(result, recipients)
    requests = sum(v for p in ("planner", "sender") for k, v in result[p]["window"].by_operation.items()
                   if k.startswith("dynamodb."))
    SCALE_INPUTS["figures"] = (billed["wru"] / recipients, billed["rru"] / recipients, requests / recipients,
                               sum(costs.values()), gb_s / 1e6)
    ops = ", ".join(f"{op} {w * 1000 / recipients:.0f}/{r * 1000 / recipients:.0f}"
                    for op, (w, r) in sorted(billed["by_op"].items(), key=lambda kv: -kv[1][0] - kv[1][1]))
    kinds = ", ".join(f"{kind} {w / recipients:.2f}" for kind, w in
                      sorted(billed["by_kind"].items(), key=lambda kv: -kv[1]) if w / recipients >= 0.005)
    return [
        ("DynamoDB request units per 1,000 recipients, planner + sender (WRU/RRU by operation; an item in a "
         "transaction = 2 WRU; item sizes by DynamoDB's rules)",
         f"{billed['wru'] * 1000 / recipients:.0f} WRU, {billed['rru'] * 1000 / recipients:.0f} RRU ({ops}); "
         f"WRU per recipient by item: {kinds}; largest item written {billed['largest_item']} B, so 1 WRU each "
         f"(<= 1 KB)"),
        ("projected AWS cost per million deliveries, from the counts above (us-east-1 on-demand list prices; "
         "China regions are priced apart and differ)",
         f"${sum(costs.values()):.2f}: " + ", ".join(f"{k} ${v:.3f}" for k, v in costs.items())
         + f" — at DynamoDB ${PRICE_WRU * 1e6:.3f}/M WRU, ${PRICE_RRU * 1e6:.3f}/M RRU; SQS ${PRICE_SQS * 1e6:.2f}/M "
           f"requests ({sqs / 1e3:.1f} k, each 64 KB of payload one request, the Lambda poller's included); "
           f"Scheduler ${PRICE_SCHEDULER * 1e6:.2f}/M invocations (one per fire of {recipients:,}: less for bigger "
           f"audiences); Lambda arm64 ${PRICE_LAMBDA_GB_S:.10f}/GB-s ({gb_s:,.0f} GB-s at the measured handler "
           f"durations, which scale with L/C) + ${PRICE_LAMBDA_REQUEST * 1e6:.2f}/M invocations; storage, logs, "
           f"metrics and the campaign.completed event left out"),
    ]


# Why a cap on a credit channel stays above 2 WRU per recipient: the cap counts per member (the reach
# item) and the credit per member and subscribe template (the credit item), two items, so two 1-WRU
# writes are the floor (a transaction of the two would be 4); the rest is the delivery group, the
# tallies and the run's own items, shared by the group.
CAP_FLOOR = ("; floor with a cap on a credit channel: 2 WRU of claim (the day count on the member's reach "
             "item, the credit on the member's credit item: two items, two 1-WRU writes; one transaction of "
             "both would be 4) + the group's share, so <= 2 needs the credit and the cap on one item")
VARIANT_SAMPLE = 15          # percent of the audience a variant fire targets (a cap or a coupon changes per-recipient costs only)
CAP = 3


def regrant_credits(openids) -> None:
    """One more credit each (as a second accepted popup), so a variant fire reaches them again."""
    from chalicelib.storage.campaigns import credit_key
    from chalicelib.storage.models import SubscribeCredit
    for openid in openids:
        SubscribeCredit(*credit_key("demo", openid, TEMPLATE)).update(actions=[SubscribeCredit.credits.set(1)])


def variant_rows(stack, openids) -> tuple[list[tuple[str, str]], dict]:
    """WRU/RRU and DynamoDB requests per recipient, planner and sender apart, with and without a
    frequency cap and a coupon (fires to a VARIANT_SAMPLE % sample of the same audience). A coupon
    template without a total stock goes through the delivery ledger (services.campaign_coupons); one
    with a total stock keeps a transaction per coupon (its row shows what that costs)."""
    from chalicelib.services import coupons
    # the usual campaign coupon: one per member (per_member_limit 1, the default), a template of its
    # own per variant so that no member of a sample holds one already (every delivery issues one)
    coupon = {"name": "bench 10 off", "kind": "cash_off", "value": 1000, "valid_days_after_claim": 30,
              "per_member_limit": 1}
    sample = {"audience": {"sample_percent": VARIANT_SAMPLE}}
    variants = {BASE: {}, f"cap {CAP}/day": {"limits": {"frequency_cap_per_day": CAP}},
                "coupon (no total stock: through the ledger)": {"coupon_template_id": coupon},
                f"coupon + cap {CAP}/day": {"coupon_template_id": coupon,
                                            "limits": {"frequency_cap_per_day": CAP}},
                "coupon with a total stock (a transaction per coupon)": {
                    "coupon_template_id": {**coupon, "total_stock": 100_000}}}
    import os
    only = os.environ.get("BENCH_VARIANTS")          # e.g. "coupon": only the variants naming it (quick mode)
    rows, per = [], {}
    dollars_of: dict[str, tuple[float, float, float]] = {}
    for name, variant in variants.items():
        if only and only not in name and name != BASE:     # the base always: the others' marginal is over it
            continue
        if "coupon_template_id" in variant:
            variant = {**variant, "coupon_template_id": coupons.create_template(
                "demo", variant["coupon_template_id"])["template_id"]}
        regrant_credits(openids)
        started = time.monotonic()
        result = fire_campaign(stack, None, **sample, **variant)
        print(f"variant {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        n = result["campaign"]["stats"]["sent"]
        if "coupon_template_id" in variant:
            issued = coupons.get_template("demo", variant["coupon_template_id"])["issued"]
            if issued != n:
                raise RuntimeError(f"{name}: {issued} coupons issued for {n} deliveries")
        figures, kinds = {}, {}
        for phase in ("planner", "sender"):
            calls = result[phase]["calls"]
            billed = units(calls, item_sizes(_written(calls)))
            ddb = sum(v for k, v in result[phase]["window"].by_operation.items() if k.startswith("dynamodb."))
            figures[phase] = (billed["wru"] / n, billed["rru"] / n, ddb / n)
            for kind, w in billed["by_kind"].items():
                kinds[kind] = kinds.get(kind, 0) + w / n
        wru = sum(f[0] for f in figures.values())
        rru = sum(f[1] for f in figures.values())
        per[name] = (wru, rru)
        dollars = (wru * PRICE_WRU + rru * PRICE_RRU) * 1e6
        pollers = [result["planner"]["poller"], result["sender"]["poller"]]
        per_million = 1e6 / n
        lam = (sum(p.gb_seconds for p in pollers) * PRICE_LAMBDA_GB_S
               + sum(p.invocations for p in pollers) * PRICE_LAMBDA_REQUEST) * per_million
        sqs = sum(p.billed for p in pollers) * per_million * PRICE_SQS
        dollars_of[name] = (dollars, lam, sqs)
        by_item = ", ".join(f"{k} {w:.2f}" for k, w in sorted(kinds.items(), key=lambda kv: -kv[1]) if w >= 0.005)
        rows.append((f"DynamoDB per recipient, {name} ({n:,} recipients: WRU / RRU / requests)",
                     "; ".join(f"{phase} {w:.2f} / {r:.2f} / {q:.2f}" for phase, (w, r, q) in figures.items())
                     + f"; together {wru:.2f} WRU, {rru:.2f} RRU = ${dollars:.2f} of DynamoDB per million "
                       f"deliveries; all in ${dollars + lam + sqs:.2f} (Lambda ${lam:.2f} at this fire's handler "
                       f"durations, SQS ${sqs:.3f}); WRU by item: {by_item} (goal: <= $1.50 all in without a "
                       f"coupon, <= $2.50 with one)"
                     + (CAP_FLOOR if name.startswith("cap") or "+ cap" in name else "")
                     + (at_headline(name, dollars_of) if name != BASE else "")))
        print(f"row: {rows[-1][0]}: {rows[-1][1]}", file=sys.stderr, flush=True)
    return rows, per


BASE = "no cap, no coupon"


def coupon_headline_row(stack, openids) -> tuple[str, str]:
    """The coupon case at the headline's size: the same fire of MEMBERS with a coupon attached (a
    template of its own, per_member_limit 1: every delivery issues one), priced as the headline is,
    so its delivery groups, chunks and Lambda time are those of the headline fire. Fired first after
    the headline fire (its table as the headline found it, not after five more fires)."""
    from chalicelib.services import coupons
    template = coupons.create_template("demo", {"name": "bench 10 off", "kind": "cash_off", "value": 1000,
                                                "valid_days_after_claim": 30, "per_member_limit": 1})["template_id"]
    regrant_credits(openids)
    started = time.monotonic()
    result = fire_campaign(stack, MEMBERS, coupon_template_id=template)
    print(f"coupon at the headline's size: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    issued = coupons.get_template("demo", template)["issued"]
    if issued != MEMBERS:
        raise RuntimeError(f"{issued} coupons issued for {MEMBERS} deliveries")
    costs, billed, _sqs, _gb_s = priced(result, MEMBERS)
    kinds = ", ".join(f"{kind} {w / MEMBERS:.2f}" for kind, w in
                      sorted(billed["by_kind"].items(), key=lambda kv: -kv[1]) if w / MEMBERS >= 0.005)
    row = (f"projected AWS cost per million deliveries with a coupon (no total stock, per_member_limit 1), measured "
           f"at the headline's size (one fire to {MEMBERS:,}, every delivery issued a coupon)",
           f"${sum(costs.values()):.2f}: " + ", ".join(f"{k} ${v:.3f}" for k, v in costs.items())
           + f"; {billed['wru'] / MEMBERS:.2f} WRU, {billed['rru'] / MEMBERS:.2f} RRU per recipient; WRU by item: "
             f"{kinds} (goal: <= $2.50 with a coupon; same prices and method as the headline)")
    print(f"row: {row[0]}: {row[1]}", file=sys.stderr, flush=True)
    return row


def headline() -> tuple[float, str]:
    """The headline's all-in $ per million deliveries: measured in this run (the full bench), or in
    quick mode the README's last measured figure (its row is read, and said so)."""
    if "figures" in SCALE_INPUTS:
        return SCALE_INPUTS["figures"][3], f"the headline fire of {MEMBERS:,} measured in this run"
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    found = re.search(r"\| projected AWS cost per million deliveries[^|]*\| \$([0-9.]+):", text)
    if not found:
        raise RuntimeError("quick mode: no headline figure in README.md to add the marginal cost to")
    return float(found.group(1)), f"the headline fire of {MEMBERS:,} as last measured (README; quick mode does not fire it)"


def at_headline(name: str, dollars_of: dict) -> str:
    """A case's all-in cost at the headline fire's size: what it costs per recipient beyond the
    no-cap, no-coupon fire of the same sample size in this run (DynamoDB, Lambda, SQS: the fixed
    per-fire costs, which weigh ~6x more in a sample fire of ~430 than in the headline's 2,800,
    cancel out), added to the headline's all-in figure."""
    (d, lam, sqs), (d0, lam0, sqs0) = dollars_of[name], dollars_of[BASE]
    base, source = headline()
    extra = (d - d0) + (lam - lam0) + (sqs - sqs0)
    return (f"; at the headline's size: ${base + extra:.2f} all in = ${base:.2f} ({source}) + this case's "
            f"marginal ${extra:.2f} per million over the no-coupon, no-cap sample fire of this run (DynamoDB "
            f"${d - d0:+.2f}, Lambda ${lam - lam0:+.2f}, SQS ${sqs - sqs0:+.3f})"
            + ("; an overestimate for a coupon: its per-group items (scoreboard, outbox, template stock) are "
               "shared by the sample's small groups (chunks of ~26) instead of the headline's 50, see the row "
               "measured at the headline's size" if "coupon" in name else ""))


def quick() -> list[tuple[str, str]]:
    """`BENCH_CAMPAIGNS=variants python -m bench --rows bench.campaigns`: only the per-recipient
    rows (cap, coupon) and the coupon fire at the headline's size, without the headline fire and
    the scale rows: a few minutes, not ~14."""
    import os
    stack = _setup()
    try:
        openids = set(seed_audience(MEMBERS))
        set_concurrency(CONCURRENCY)
        sim(stack, "POST", "faults", {"api": SEND_API, "errcode": None, "rate": 0.0, "latency_ms": LATENCY_MS})
        warm_container(stack)
        coupon_rows = ([coupon_headline_row(stack, sorted(openids))]
                       if "coupon" in (os.environ.get("BENCH_VARIANTS") or "coupon") else [])
        return variant_rows(stack, sorted(openids))[0] + coupon_rows
    finally:
        stack.stop()


# ---- the scale plan -----------------------------------------------------------------------------
SCALE_C = 32                 # WeChat calls in flight per sender container
SCALE_L = 0.2                # seconds per WeChat call (as the simulator's L)
SCALE_CHUNK = 200            # recipients per chunk (the planner's target)
SCALE_BATCH = 4              # chunks per sender invocation (resources.queue('send').batch_size)
TX_MS = 25                   # a small TransactWriteItems on DynamoDB, ms (what a tally item is held for)
PARTITION_WRU = 1000         # DynamoDB's per-partition write ceiling, WRU/s


def scale_rows(wru: float, rru: float, requests: float, cost: float, gb_s: float) -> list[tuple[str, str]]:
    """1M and 10M recipients from the per-recipient figures measured above, and the ceilings: the
    delivery groups' partitions (ledger.LEDGER_SHARDS per run), the tallies (ledger.TALLY_SHARDS
    items per outcome), each group transaction holding a tally item for TX_MS."""
    from chalicelib.storage import ledger
    from chalicelib.services import sending
    per_container = SCALE_C / SCALE_L
    group_wru = 2 * (1 + 2)                      # group item (<= 3 KB, transactional) + two tallies' worth
    rows = []
    for n in (1_000_000, 10_000_000):
        target = n / 3600                        # sends/s for the audience within an hour
        containers = math.ceil(target / per_container)
        groups_per_s = target / sending.GROUP
        ledger_wru = groups_per_s * group_wru / ledger.LEDGER_SHARDS
        tally_busy = groups_per_s / ledger.TALLY_SHARDS * TX_MS / 1000   # share of time a tally item is held
        old_ledger_wru = target * 6 / 16         # the old ledger: claim + final per recipient over 16 partitions
        old_tally = groups_per_s * 2 / 8 * TX_MS / 1000                  # old: groups of 25 over 8 tally shards
        invocations = math.ceil(n / SCALE_CHUNK / SCALE_BATCH)
        rows.append((f"scale: {n / 1e6:.0f}M recipients in one hour, C={SCALE_C}, L={SCALE_L * 1000:.0f} ms",
                     f"{target:,.0f} sends/s on {containers} sender containers; {requests * n / 1e6:,.1f} M DynamoDB "
                     f"requests, {wru * n / 1e6:,.1f} M WRU, {rru * n / 1e6:,.1f} M RRU, ${cost * n / 1e6:,.2f} in all; "
                     f"{invocations:,} sender invocations of {SCALE_BATCH} x {SCALE_CHUNK} "
                     f"({gb_s * n:,.0f} GB-s); wall time {n / (containers * per_container) / 60:.0f} min. "
                     f"Ceilings: a delivery-group partition takes {ledger_wru:.1f} WRU/s of {PARTITION_WRU} "
                     f"({ledger.LEDGER_SHARDS} per run; the old 16-partition ledger: {old_ledger_wru:,.0f}); "
                     f"a tally item is held {tally_busy:.1%} of the time ({ledger.TALLY_SHARDS} shards; the old 8 "
                     f"shards: {old_tally:.0%}, so transactions would conflict); first ceiling hit: "
                     + ("none below the hour (WeChat quota and Lambda concurrency "
                        f"{containers} are the limits)" if ledger_wru < PARTITION_WRU / 2 and tally_busy < 0.1
                        else "the tallies or the ledger partitions")))
    return rows


def run() -> list[tuple[str, str]]:
    import os
    if os.environ.get("BENCH_CAMPAIGNS") == "variants":
        return quick()
    stack = _setup()
    try:
        started = time.monotonic()
        openids = set(seed_audience(MEMBERS))
        seeded = time.monotonic() - started
        set_concurrency(CONCURRENCY)
        sim(stack, "POST", "faults", {"api": SEND_API, "errcode": None, "rate": 0.0, "latency_ms": LATENCY_MS})
        warm_container(stack)
        result = fire_campaign(stack, MEMBERS)
        sent = [s["touser"] for s in sim(stack, "GET", "sent") if s["api"] == SEND_API and s["touser"] in openids]
        if len(sent) != MEMBERS or len(set(sent)) != MEMBERS:
            raise RuntimeError(f"the simulator accepted {len(sent)} sends ({len(set(sent))} members) "
                               f"for {MEMBERS} recipients")
        # sender throughput is bench.throughput's (the emulator and the simulator in processes of their
        # own): measured here, with all three in one interpreter, it measured the bench, not the sender
        rows = request_rows(result, MEMBERS)
        rows += cost_rows(result, MEMBERS)
        # the coupon fire at the headline's size next, in the headline's conditions (before the variants)
        coupon_row = coupon_headline_row(stack, sorted(openids))
        more, per = variant_rows(stack, sorted(openids))
        rows += more
        rows.append(coupon_row)
        rows += scale_rows(*SCALE_INPUTS["figures"])
        rows.append(("setup, not in the figures above",
                     f"{MEMBERS:,} members + credits seeded in {seeded:.0f} s; planner phase "
                     f"{result['planner']['seconds']:.1f} s, sender phase {result['sender']['seconds']:.1f} s"))
        return rows
    finally:
        stack.stop()
