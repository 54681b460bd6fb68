"""Package codes (包裹卡, issue 11 §2): a batch of one-time mini-program scenes `pk.<code>`, minted by a
worker (no WeChat call per code: the printer renders plain-link QR codes that the mini-program opens
through its registered URL prefix and passes on as the scene), each good for one shopper.

The first shopper to open the mini-program from a code claims it (a conditional put of its spend),
joins through the batch's channel and gets the batch's coupon (issued once per code, by issue key);
their answer is stored on the spend and replayed to their retries. Anyone else: 409 code_already_used.
A scene that is no code counts toward the shopper's unknown-code guard (the till's guard, keyed by
the shopper), so codes cannot be enumerated from one WeChat account.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from datetime import datetime, timezone

from chalicelib import aws
from chalicelib.domain import package_codes as rules
from chalicelib.domain.members import Shopper
from chalicelib.errors import Conflict, NotFound, TooManyRequests
from chalicelib.observability import count, logger
from chalicelib.resources import queue
from chalicelib.services import onboarding
from chalicelib.storage import members as members_store
from chalicelib.storage import package_codes as package_code_store
from chalicelib.storage import tenancy
from chalicelib.storage.models import Channel, PackageBatch

QUEUE = "mint"                    # the package-code minting queue (resources.QUEUES)
UNKNOWN_CODE_LIMIT = 20           # unknown package codes one shopper may try per guard window (5 min)
STOP_BEFORE_MS = 15_000           # a worker re-queues its batch when less than this is left of its time


def _iso(now: float | None = None) -> str:
    return onboarding.iso(datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc))


def _hash(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def view(batch: PackageBatch) -> dict:
    return {"batch_id": batch.batch_id, "count": int(batch.count), "channel": batch.channel,
            "reward": {"coupon_template_id": batch.coupon_template_id}, "state": batch.state,
            "minted": int(batch.minted or 0), "progress": round(int(batch.minted or 0) / int(batch.count), 4),
            "created_at": batch.created_at, "completed_at": batch.completed_at}


def _enqueue(brand_id: str, batch_id: str) -> None:
    aws.client("sqs").send_message(QueueUrl=os.environ[queue(QUEUE).env],
                                   MessageBody=json.dumps({"brand_id": brand_id, "batch_id": batch_id}))


def create(brand_id: str, body: dict) -> tuple[int, dict]:
    """202 with the batch, its job queued. The same request again answers the batch as it is (and
    queues its job again while it is minting: a job that was lost is not waited for forever);
    another request with the batch id is 409 batch_exists."""
    fields = rules.request(body)
    tenancy.require_brand(brand_id)
    try:
        Channel.get(tenancy.brand_pk(brand_id), f"CHANNEL#{fields['channel']}")
    except Channel.DoesNotExist:
        raise NotFound(f"no channel code for scene {fields['channel']}", code="unknown_channel") from None
    from chalicelib.storage import coupons as coupon_store
    if coupon_store.get_template(brand_id, fields["coupon_template_id"]) is None:
        raise NotFound(f"no coupon template {fields['coupon_template_id']}", code="unknown_coupon_template")
    request_hash = _hash(fields)
    batch = PackageBatch(*package_code_store.batch_key(brand_id, fields["batch_id"]), brand_id=brand_id, state="minting",
                         secret=secrets.token_hex(32), request_hash=request_hash, created_at=_iso(), pages_done=0,
                         minted=0, **fields)
    try:
        package_code_store.create_batch(batch)
    except package_code_store.Exists:
        batch = package_code_store.get_batch(brand_id, fields["batch_id"])
        if batch is None or batch.request_hash != request_hash:
            raise Conflict(f"batch {fields['batch_id']} already exists with another request",
                           code="batch_exists") from None
    if batch.state != "complete":
        _enqueue(brand_id, batch.batch_id)
    return 202, view(batch)


def get(brand_id: str, batch_id: str) -> dict:
    batch = package_code_store.get_batch(brand_id, batch_id)
    if batch is None:
        raise NotFound(f"no package-code batch {batch_id}", code="unknown_batch")
    return view(batch)


def csv(brand_id: str, batch_id: str) -> str:
    """`code,scene` lines for the printer, derived from the batch's secret (not read back)."""
    batch = package_code_store.get_batch(brand_id, batch_id)
    if batch is None:
        raise NotFound(f"no package-code batch {batch_id}", code="unknown_batch")
    if batch.state != "complete":
        raise Conflict(f"batch {batch_id} is still minting ({int(batch.minted)}/{int(batch.count)}); "
                       "fetch the CSV once it is complete", code="batch_not_complete")
    secret = bytes.fromhex(batch.secret)
    return "code,scene\n" + "".join(f"{c},{rules.scene(c)}\n" for c in rules.codes(secret, 0, int(batch.count)))


def mint(brand_id: str, batch_id: str, *, remaining_ms=lambda: 10 ** 9, after_page=None) -> bool:
    """Mint the batch's codes from its checkpoint on, page by page; True when complete, False when it
    stopped for time (the caller re-queues). `after_page(page)` runs after each checkpoint (tests kill
    the worker there)."""
    batch = package_code_store.get_batch(brand_id, batch_id)
    if batch is None:
        logger.warning("package batch vanished", extra={"brand_id": brand_id, "batch_id": batch_id})
        return True
    secret, total = bytes.fromhex(batch.secret), int(batch.count)
    while batch.state != "complete":
        page = int(batch.pages_done or 0)
        if remaining_ms() < STOP_BEFORE_MS:
            return False
        start, stop = rules.page_range(page, total)
        package_code_store.write_codes(brand_id, batch, list(zip(range(start, stop), rules.codes(secret, start, stop))))
        complete = page + 1 >= rules.pages(total)
        if package_code_store.checkpoint(batch, page, stop, complete=complete, now=_iso()):
            count("PackageCodesMinted", stop - start)
            if after_page is not None:
                after_page(page)
        batch = package_code_store.get_batch(brand_id, batch_id)       # ours, or the one that got there first
    return True


def run_job(brand_id: str, batch_id: str, remaining_ms) -> None:
    if not mint(brand_id, batch_id, remaining_ms=remaining_ms):
        _enqueue(brand_id, batch_id)


def scan(brand_id: str, session: dict, scene: str) -> tuple[int, dict]:
    """The mini-program opened from a package code (POST /mp/{brand}/scan {"scene": "pk.<code>"})."""
    from chalicelib.services import coupons
    from chalicelib.storage import coupons as coupon_store
    openid = session["o"]
    now = time.time()
    guard_owner = f"pk:{openid}"
    code = rules.code_of(scene)
    item, spend, guard = package_code_store.read_scan(brand_id, code or "-", coupon_store.guard_key(brand_id, guard_owner, now))
    if guard is not None and int(guard.misses or 0) >= UNKNOWN_CODE_LIMIT:
        logger.warning("package-code guard tripped", extra={"brand_id": brand_id})
        raise TooManyRequests("too many unknown package codes; wait a few minutes", code="too_many_unknown_codes")
    if code is None or item is None:
        coupon_store.count_unknown_code(brand_id, guard_owner, now)
        raise NotFound("no such package code", code="unknown_code")
    if spend is None and package_code_store.claim_spend(brand_id, code, openid, _iso(now)):
        spend = None                                          # ours: serve it below
    else:
        spend = spend or package_code_store.get_spend(brand_id, code)
        if spend.openid != openid:
            raise Conflict("this package code has been used", code="code_already_used")
        if spend.answer:
            return 200, json.loads(spend.answer)                # the winner's retry: its first answer
    # the winner (or its retry before the answer was stored): join and reward, each exactly once
    at = datetime.fromtimestamp(now, timezone.utc)
    shopper = Shopper(mp=openid, unionid=session.get("u"))
    result = onboarding.touch(brand_id, shopper, scene=item.channel, via="mp", now=at, inbound=f"pk:{code}",
                              event="package_code")
    member_id = result.member_id or members_store.find_member_id(brand_id, "mp", openid)
    brand = tenancy.require_brand(brand_id)
    coupon_code = coupons.issue_coupon(brand, member_id, item.coupon_template_id, issue_key=f"pk:{code}",
                                       source="package_code")
    answer = {"member_id": member_id, "created": result.created, "scene": scene, "channel": item.channel,
              "batch_id": item.batch_id, "coupon": ({"code": coupon_code, "template_id": item.coupon_template_id}
                                                    if coupon_code else None), "at": onboarding.iso(at)}
    package_code_store.record_answer(brand_id, code, json.dumps(answer))
    count("PackageCodesSpent")
    return 200, answer
