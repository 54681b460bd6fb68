"""Planner figures: AWS requests and read units per 1,000 recipients at 10% eligibility, how full the
chunks are, a rare-tag audience through the tag index against the scan, and the plan side's ceiling.

One audience shard of MEMBERS_PER_SHARD members is seeded straight into the table (the items a
first touch writes: member with its audience-index keys, and its tag-index entries where the tag
index exists), 10% of them met at one store and 2% tagged `rare`. A campaign is fired on the
emulator, and that shard's message is planned by services.planning with its production page and
chunk sizes; the chunks land on the real (emulated) send queue and are read back to count them. The
fan-out and the 15 empty shards are left out of the per-1,000 figures (fixed costs per fire, shown
apart). Read units are priced from the items that came back (bench.campaigns.units).
"""
from __future__ import annotations

import json
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

MEMBERS_PER_SHARD = 2_500      # the emulator answers a Query in ~5-20 ms per item returned: kept small
SHARDS = (0,)
STORE, OTHER = "sz-futian", "sh-jingan"
SEED = 20261130
PARTITION_RCU = 3_000            # DynamoDB's read ceiling per partition (eventually consistent: 2 reads/RCU of 4 KB)
TARGET = 10_000_000              # recipients one brand must plan well inside an hour


def _seed(brand_id: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Members of the two shards (seeded ids, so every run plans the same chunks): {id: (store, tags)}."""
    from chalicelib.domain.members import audience_key, audience_shard
    from chalicelib.ids import _ALPHABET
    from chalicelib.storage.members import member_key
    from chalicelib.storage.models import Item, Member, Touch
    try:
        from chalicelib.storage.audience import tag_partition
        from chalicelib.storage.models import TagEntry
    except ImportError:                                  # before the tag index
        TagEntry = None
    rng = random.Random(SEED)
    now = datetime.now(timezone.utc)
    facts: dict[str, tuple[str, tuple[str, ...]]] = {}
    per_shard = {s: 0 for s in SHARDS}
    with Item.batch_write() as batch:
        i = 0
        while min(per_shard.values()) < MEMBERS_PER_SHARD:
            member_id = "m_" + "".join(rng.choice(_ALPHABET) for _ in range(16))
            shard = audience_shard(member_id)
            if shard not in per_shard or per_shard[shard] >= MEMBERS_PER_SHARD:
                continue
            n = per_shard[shard]
            per_shard[shard] += 1
            i += 1
            store = STORE if n % 10 == 0 else OTHER
            tags = ("poster",) + (("rare",) if n % 50 == 7 else ())
            at = (now - timedelta(days=3, seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            openid = "o" + "".join(rng.choice(_ALPHABET + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") for _ in range(27))
            touch = Touch(store_id=store, guide_id=None, scene="S2", source="receipt_qr", via="mp", at=at)
            gpk, gsk = audience_key(brand_id, member_id, at)
            batch.save(Member(member_key(brand_id, member_id), "MEMBER", brand_id=brand_id, member_id=member_id,
                              joined_at=at, mp_openid=openid, unionid="u" + openid[1:], first_touch=touch,
                              last_touch=touch, tags=set(tags), touches=1, gsi1pk=gpk, gsi1sk=gsk))
            if TagEntry is not None:
                for tag in tags:
                    batch.save(TagEntry(tag_partition(brand_id, tag, shard), member_id, member_id=member_id))
            facts[member_id] = (store, tags)
    return facts


def _campaign(audience: dict) -> str:
    from chalicelib.services import campaigns
    return campaigns.create_campaign("demo", {
        "name": "bench planner", "audience": audience,
        "message": {"medium": "mp_subscribe", "template_id": "TPL_bench", "page": "pages/x/index",
                    "data": {"thing1": {"value": "10 off"}}},
        "schedule": {"at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}})["campaign_id"]


def _drain(key: str) -> list[dict]:
    from chalicelib import aws
    from chalicelib.services.campaigns import queue_url
    sqs = aws.client("sqs")
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url(key), MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=queue_url(key), Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def plan(audience: dict) -> dict:
    """Fire a campaign to `audience` and plan the two seeded shards, metered. Returns the calls, the
    chunks queued and the time taken."""
    from bench.campaigns import METER
    from chalicelib.services import planning
    campaign_id = _campaign(audience)
    _drain("send")
    planning.handle({"kind": "fire", "brand_id": "demo", "campaign_id": campaign_id, "run_id": "f1"})
    shards = _drain("plan")
    METER.calls = []
    METER.on = True
    started = time.monotonic()
    for message in shards:
        if message.get("shard") in SHARDS:
            planning.handle(message, remaining=lambda: 900.0)
    seconds = time.monotonic() - started
    METER.on = False
    calls = METER.calls
    METER.calls = []
    METER.on = True
    empty = [m for m in shards if m.get("shard") not in SHARDS]
    for message in empty:                        # the empty shards: what every shard costs, members apart
        planning.handle(message, remaining=lambda: 900.0)
    METER.on = False
    fixed = len(METER.calls) / max(1, len(empty))
    chunks = [c for c in _drain("send") if c.get("campaign_id") == campaign_id]
    return {"calls": calls, "chunks": chunks, "seconds": seconds, "fixed": fixed}


def _requests(calls) -> dict[str, int]:
    out: dict[str, int] = {}
    for service, op, _params, _parsed in calls:
        out[f"{service} {op}"] = out.get(f"{service} {op}", 0) + 1
    return out


def _per_k(n: float, recipients: int) -> str:
    v = n * 1000 / recipients
    return f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _figure(result: dict, recipients: int) -> tuple[str, dict]:
    from bench.campaigns import units
    requests = _requests(result["calls"])
    u = units(result["calls"], {})
    total = sum(requests.values())
    ops = ", ".join(f"{k.split(' ')[1]} {_per_k(v, recipients)}" for k, v in sorted(requests.items()))
    fixed = result.get("fixed", 0) * len(SHARDS)
    return (f"{_per_k(total, recipients)} requests ({ops}); {_per_k(u['rru'], recipients)} RRU, "
            f"{_per_k(u['wru'], recipients)} WRU; {_per_k(total - fixed, recipients)} requests without the "
            f"{fixed:.0f} every shard costs whatever its size (lease, campaign, mode, finish, completion check: "
            f"measured on the empty shards), as at scale", u)


def _fill(chunks: list[dict], chunk_size: int) -> str:
    sizes = [len(c["recipients"]) for c in chunks]
    by_shard: dict[str, list[int]] = {}
    for c in chunks:
        by_shard.setdefault(str(c["chunk"])[:2], []).append(len(c["recipients"]))
    inner = [s for shard in by_shard.values() for s in sorted(shard, reverse=True)[:-1]]
    return (f"{len(chunks)} chunks, mean {statistics.mean(sizes):.0f} of {chunk_size} "
            f"({statistics.mean(sizes) / chunk_size:.0%}); all but each shard's last "
            f"{statistics.mean(inner) / chunk_size:.0%} full" if inner else
            f"{len(chunks)} chunks, mean {statistics.mean(sizes):.0f} of {chunk_size}")


def cpu_per_member(calls, audience) -> tuple[float, float]:
    """The planner's own CPU per member read (items as DynamoDB returned them → model → audience
    test → packed recipient), from the Query answers recorded; and the mean member item size."""
    from chalicelib.domain import campaigns as rules
    from chalicelib.services import planning
    from chalicelib.storage.models import Member
    from bench.campaigns import item_size
    items = [i for service, op, _p, parsed in calls if op == "Query" for i in parsed.get("Items", [])
             if i.get("kind", {}).get("S") == "member"]
    spec = rules.Audience(store_ids=tuple(audience["store_ids"]))
    rounds = 3
    started = time.process_time()
    for _ in range(rounds):
        for raw in items:
            m = Member.from_raw_data(raw)
            if rules.eligible("c", spec, planning._facts(m)):
                planning._recipient(m).pack()
    per = (time.process_time() - started) / (rounds * len(items))
    return per, statistics.mean(item_size(i) for i in items)


def run() -> list[tuple[str, str]]:
    from bench.campaigns import _setup, units
    from chalicelib.services import planning
    stack = _setup()
    try:
        started = time.monotonic()
        facts = _seed("demo")
        seeded = time.monotonic() - started
        chunk = getattr(planning, "CHUNK", 200)
        scan_audience = {"store_ids": [STORE]}
        eligible = sum(1 for s, _ in facts.values() if s == STORE)
        result = plan(scan_audience)
        got = sorted(r["m"] for c in result["chunks"] for r in c["recipients"])
        if got != sorted(m for m, (s, _) in facts.items() if s == STORE):
            raise RuntimeError(f"the planner queued {len(got)} recipients for {eligible} eligible members")
        figure, _u = _figure(result, eligible)
        rows = [(f"planner, per 1,000 recipients at 10% eligibility (a store's members: {eligible:,} of "
                 f"{len(facts):,} in one audience shard, page {getattr(planning, 'PAGE', '?')}, chunk {chunk})",
                 figure),
                ("chunk fill at 10% eligibility", _fill(result["chunks"], chunk))]
        rare = sorted(m for m, (_, tags) in facts.items() if "rare" in tags)
        try:
            from chalicelib.storage import audience as audience_store
        except ImportError:
            audience_store = None
        if audience_store is not None:
            by_index = plan({"tags_all": ["rare"]})
            got = sorted(x["m"] for c in by_index["chunks"] for x in c["recipients"])
            if got != rare:
                raise RuntimeError(f"tag index: {len(got)} recipients for {len(rare)} tagged members")
            rows.append((f"planner, per 1,000 recipients of a rare tag (2%: {len(rare)} members) through the tag "
                         "index", _figure(by_index, len(rare))[0]))
            # the scan reads the same members whatever the filter: its reads, measured above, per rare recipient
            reads = [c for c in result["calls"] if c[1] == "Query"]
            rows.append(("the same audience through the scan (its Queries as measured above)",
                         f"{_per_k(len(reads), len(rare))} Query requests; {_per_k(units(reads, {})['rru'], len(rare))} RRU"))
        per_member, size = cpu_per_member(result["calls"], scan_audience)
        partition_rate = PARTITION_RCU * 2 * 4096 / size
        from chalicelib.domain.members import AUDIENCE_SHARDS
        from chalicelib.resources import queue
        spec = queue("plan")
        vcpu = min(1.0, spec.consumer_memory / 1769)     # Lambda: one vCPU at 1,769 MB, less in proportion
        cpu_rate = vcpu / per_member
        rate = min(cpu_rate, partition_rate)
        members_s = AUDIENCE_SHARDS * rate
        rows.append(("plan-side ceiling (one planner per audience shard, reading it in order)",
                     f"planner CPU {per_member * 1e6:.0f} µs/member on this machine -> {cpu_rate:,.0f} members/s per "
                     f"planner at {spec.consumer_memory} MB ({vcpu:.2f} vCPU); a shard's partition serves "
                     f"{partition_rate:,.0f} members/s ({PARTITION_RCU:,} RCU, {size:.0f} B a member); so "
                     f"{AUDIENCE_SHARDS} shards plan {members_s:,.0f} members/s: {TARGET / 1e6:.0f}M recipients in "
                     f"{TARGET / members_s / 60:.1f} min at 100% eligibility, {TARGET * 10 / members_s / 60:.0f} min "
                     f"at 10%; on the emulator one planner read {len(facts) / result['seconds']:,.0f} members/s"))
        rows.append(("setup, not in the figures above", f"{len(facts):,} members seeded in {seeded:.0f} s"))
        return rows
    finally:
        stack.stop()
