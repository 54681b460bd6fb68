"""Coupon figures: AWS requests per claim / redemption / lookup, the flash-sale hot-key model,
and claim throughput relative to bare conditional PutItems on the same emulator."""
from __future__ import annotations

import collections
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def _setup():
    from bench import counting
    counting.install()
    from siyu_dev.stack import LocalStack
    stack = LocalStack(api_port=0, aws_port=0, wechat_port=0, serve_api=False, run_pump=False).start()
    from chalicelib.services import admin
    from siyu_dev.__main__ import DEMO_BRAND, DEMO_CHANNELS, DEMO_STORES
    admin.create_brand(DEMO_BRAND)
    for store in DEMO_STORES:
        admin.create_store("demo", store)
    admin.create_channel("demo", DEMO_CHANNELS[1])
    return stack


def _member(openid: str) -> dict:
    from chalicelib.domain.members import Shopper
    from chalicelib.services import onboarding
    from datetime import datetime, timezone
    onboarding.touch("demo", Shopper(mp=openid), scene="S2", via="mp", now=datetime.now(timezone.utc))
    return {"o": openid}


def request_counts() -> dict[str, tuple[int, dict]]:
    from bench import counting
    from chalicelib.services import coupons
    figures = {}
    template = coupons.create_template("demo", {"name": "10 off", "kind": "cash_off", "value": 1000,
                                                "valid_days_after_claim": 30, "total_stock": 1000,
                                                "per_member_limit": 5})["template_id"]
    warm = _member("o_warm")
    code = coupons.claim("demo", warm, template)["coupon"]["code"]       # warms brand + template caches
    coupons.redeem("demo", "sz-futian", {"code": code, "order_id": "w", "order_amount_cents": 5000}, "warm")
    session = _member("o_bench")
    with counting.Window() as w:
        code = coupons.claim("demo", session, template)["coupon"]["code"]
    figures["claim"] = (w.total, dict(w.by_operation))
    with counting.Window() as w:
        coupons.redeem("demo", "sz-futian", {"code": code, "order_id": "o1", "order_amount_cents": 5000}, "k1")
    figures["redemption"] = (w.total, dict(w.by_operation))
    with counting.Window() as w:
        coupons.redeem("demo", "sz-futian", {"code": code, "order_id": "o1", "order_amount_cents": 5000}, "k1")
    figures["retried redemption (replayed answer)"] = (w.total, dict(w.by_operation))
    member_code = coupons.my_member_code("demo", session)["member_code"]
    with counting.Window() as w:
        coupons.member_lookup("demo", "sz-futian", {"member_code": member_code, "order_amount_cents": 5000})
    figures["member lookup"] = (w.total, dict(w.by_operation))
    return figures


def flash_sale_model(rate: int = 10_000, stock: int = 1_000, containers: int = 100) -> tuple[int, int, int]:
    """Run `rate` claims (one simulated second) through the real claim code with the transaction
    recorded instead of sent; stock is simulated per shard. Claims are spread round-robin over
    `containers` Lambda containers, each with its own memory of which shards it found empty (so every
    container pays its own refused writes). Returns (shards, max writes on one item, coupons issued)."""
    from datetime import datetime, timezone
    from chalicelib.domain import coupons as rules
    from chalicelib.services import coupons as service
    from chalicelib.storage import coupons as store
    from chalicelib.storage.models import Brand
    from chalicelib.storage.tx import Tx

    template = rules.template({"name": "flash", "kind": "cash_off", "value": 100, "valid_days_after_claim": 1,
                               "total_stock": stock, "flash_sale": True, "per_member_limit": 1}, "tpl_flash")
    remaining = dict(enumerate(rules.split_stock(stock, template.shards)))
    writes: collections.Counter = collections.Counter()
    original = Tx.commit

    def record(self, refusals=None):
        keys = [op["Key"] if "Key" in op else {k: op["Item"][k] for k in ("pk", "sk")}
                for op in self._tx._update_items + self._tx._put_items]
        stock_key = next(k for k in keys if k["sk"]["S"].startswith("STOCK#"))
        shard = int(stock_key["sk"]["S"][6:])
        if remaining[shard] <= 0:                    # the condition refuses: a failed write, still a write
            writes[(stock_key["pk"]["S"], stock_key["sk"]["S"])] += 1
            raise refusals["stock"]
        remaining[shard] -= 1
        for key in keys:
            writes[(key["pk"]["S"], key["sk"]["S"])] += 1
    Tx.commit = record
    brand = Brand("B#bench", "BRAND", brand_id="bench", name="b", timezone="Asia/Shanghai", created_at="",
                  secret_ref="")
    memories = [{} for _ in range(containers)]
    shared = service._empty_shards
    issued = 0
    try:
        now = datetime.now(timezone.utc)
        for i in range(rate):
            service._empty_shards = memories[i % containers]
            try:
                service._issue(brand, template, f"m_{i}", source="claim", issue_key=None, now=now)
                issued += 1
            except store.OutOfStock:
                pass
    finally:
        Tx.commit = original
        service._empty_shards = shared
    return template.shards, max(writes.values()), issued


def throughput(n: int = 400, workers: int = 8) -> tuple[float, float]:
    """Claims/s through the service vs conditional PutItem/s, same emulator, same concurrency."""
    from chalicelib import aws
    from chalicelib.services import coupons
    from chalicelib.storage.models import Item
    template = coupons.create_template("demo", {"name": "tp", "kind": "cash_off", "value": 1,
                                                "valid_days_after_claim": 1, "total_stock": n, "flash_sale": True,
                                                "per_member_limit": 1})["template_id"]
    sessions = [_member(f"o_tp_{i}") for i in range(n)]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda s: coupons.claim("demo", s, template), sessions))
    claims_per_s = len(results) / (time.perf_counter() - start)
    ddb = aws.client("dynamodb")
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: ddb.put_item(TableName=Item.Meta.table_name, Item={
            "pk": {"S": f"bench#{uuid.uuid4().hex}"}, "sk": {"S": "x"}},
            ConditionExpression="attribute_not_exists(pk)"), range(n)))
    puts_per_s = n / (time.perf_counter() - start)
    return claims_per_s, puts_per_s


def run() -> list[tuple[str, str]]:
    stack = _setup()
    try:
        shards, hottest, issued = flash_sale_model()
        rows = [("flash sale model: 10,000 claims in one second for 1,000 coupons over 100 containers",
                 f"{shards} stock shards; hottest item {hottest} writes/s (goal <= ~1,000); {issued} issued,"
                 f" {max(0, issued - 1_000)} oversold")]
        for label, (total, ops) in request_counts().items():
            detail = ", ".join(f"{op.split('.', 1)[1]} {k}" for op, k in sorted(ops.items()))
            rows.append((f"AWS requests per {label}", f"{total} ({detail})"))
        claims, puts = throughput()
        rows.append(("claims/s through the service vs conditional PutItem/s (8 threads, emulator)",
                     f"{claims:.0f} vs {puts:.0f} = {claims / puts:.2f}x"))
    finally:
        stack.stop()
    return rows
