"""Printable codes: the claim-then-create record of each channel's code per app, the per-brand
quota counters, and the PNGs in S3.

A code is claimed (a conditional put, in one transaction with the quota counter's conditional
increment) before WeChat is called, so concurrent first requests make one WeChat call and a brand
past its quota changes nothing. A claim that fails with a proven refusal is released (the item and
the count go back); one whose outcome is unknown stays, marked, for the next request to reconcile.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError

from chalicelib import aws
from chalicelib.domain import codes as rules
from chalicelib.resources import CODES_BUCKET_ENV
from chalicelib.storage.models import Channel, ChannelCode, CodeCounter, Guide, Store
from chalicelib.storage.tx import Tx


class CodeExists(Exception):
    """Another request claimed this code first."""


class QuotaFull(Exception):
    def __init__(self, label: str):
        super().__init__(label)
        self.label = label          # "quota" (a total) or "rate" (the per-minute window)


def _pk(brand_id: str) -> str:
    return f"B#{brand_id}"


def code_sk(scene: str, app: str) -> str:
    return f"CODE#{scene}#{app}"


def get_code(brand_id: str, scene: str, app: str) -> ChannelCode | None:
    try:
        return ChannelCode.get(_pk(brand_id), code_sk(scene, app), consistent_read=True)
    except DoesNotExist:
        return None


def codes_of_channel(brand_id: str, scene: str) -> list[ChannelCode]:
    return list(ChannelCode.query(_pk(brand_id), ChannelCode.sk.startswith(f"CODE#{scene}#"),
                                  consistent_read=True))


def _quota_counter(brand_id: str, app: str) -> CodeCounter:
    return CodeCounter(_pk(brand_id), f"CODEQUOTA#{app}")


def _rate_counter(brand_id: str, app: str, minute: int) -> CodeCounter:
    return CodeCounter(f"B#{brand_id}#CODERATE", f"{app}#{minute}")


def used(brand_id: str, app: str) -> int:
    try:
        return int(CodeCounter.get(_pk(brand_id), f"CODEQUOTA#{app}", consistent_read=True).n or 0)
    except DoesNotExist:
        return 0


def claim(brand_id: str, scene: str, app: str, claim_id: str, now: float) -> None:
    """Claim the code and count it, in one transaction: the claim only if no one holds it (else
    CodeExists), the count only under the app's quota (else QuotaFull("quota")), and for mp only
    under this minute's rate (else QuotaFull("rate"))."""
    tx = Tx()
    tx.save("code", ChannelCode(_pk(brand_id), code_sk(scene, app), brand_id=brand_id, scene=scene, app=app,
                                status="claimed", claim_id=claim_id, claimed_at=now),
            condition=ChannelCode.pk.does_not_exist())
    limit = rules.quota(app)
    tx.update("quota", _quota_counter(brand_id, app), [CodeCounter.n.add(1), CodeCounter.kind.set(CodeCounter)],
              condition=None if limit is None else (CodeCounter.n.does_not_exist() | (CodeCounter.n < limit)))
    if app == "mp":
        minute = rules.minute(now)
        tx.update("rate", _rate_counter(brand_id, app, minute),
                  [CodeCounter.n.add(1), CodeCounter.kind.set(CodeCounter),
                   CodeCounter.expires_at.set(datetime.fromtimestamp((minute + 10) * 60, timezone.utc))],
                  condition=CodeCounter.n.does_not_exist() | (CodeCounter.n < rules.MP_PER_MINUTE))
    failed = tx.attempt()
    if "code" in failed:
        raise CodeExists()
    for label in ("quota", "rate"):
        if label in failed:
            raise QuotaFull(label)


def take_over(item: ChannelCode, claim_id: str, now: float) -> bool:
    """Take a claim whose holder went silent or whose outcome is unknown; False if someone else did."""
    try:
        item.update([ChannelCode.claim_id.set(claim_id), ChannelCode.claimed_at.set(now)],
                    condition=(ChannelCode.claim_id == item.claim_id) & (ChannelCode.status == item.status))
        return True
    except UpdateError as err:
        if err.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def advance(item: ChannelCode, claim_id: str, status: str, **fields) -> bool:
    """Move our claim on to `status` with `fields`; False when another request took it over."""
    actions = [ChannelCode.status.set(status)] + [getattr(ChannelCode, k).set(v) for k, v in fields.items()]
    try:
        item.update(actions, condition=ChannelCode.claim_id == claim_id)
        return True
    except UpdateError as err:
        if err.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def release(brand_id: str, scene: str, app: str, claim_id: str) -> None:
    """WeChat refused (proven): the claim goes and the quota gets its unit back, together."""
    tx = Tx()
    tx.delete("code", ChannelCode(_pk(brand_id), code_sk(scene, app)), condition=ChannelCode.claim_id == claim_id)
    tx.update("quota", _quota_counter(brand_id, app), [CodeCounter.n.add(-1)])
    tx.attempt()          # a claim taken over meanwhile is the new holder's to settle


def forget(item: ChannelCode, *, give_back: bool) -> None:
    """The channel's code is gone at WeChat too (a deleted WeCom contact way): drop the record, and
    give its quota unit back when WeChat frees it."""
    tx = Tx()
    tx.delete("code", ChannelCode(item.pk, item.sk), condition=ChannelCode.claim_id == item.claim_id)
    if give_back:
        tx.update("quota", _quota_counter(item.brand_id, item.app), [CodeCounter.n.add(-1)])
    tx.attempt()


def delete_record(item: ChannelCode) -> None:
    try:
        item.delete(condition=ChannelCode.claim_id == item.claim_id)
    except DeleteError as err:
        if err.cause_response_code != "ConditionalCheckFailedException":
            raise


# ---- the PNGs --------------------------------------------------------------------------------

def _bucket() -> str:
    return os.environ[CODES_BUCKET_ENV]


def put_png(key: str, png: bytes) -> None:
    aws.client("s3").put_object(Bucket=_bucket(), Key=key, Body=png, ContentType="image/png")


def get_png(key: str) -> bytes:
    return aws.client("s3").get_object(Bucket=_bucket(), Key=key)["Body"].read()


def delete_png(key: str) -> None:
    aws.client("s3").delete_object(Bucket=_bucket(), Key=key)


# ---- channel changes -------------------------------------------------------------------------

def delete_channel(brand_id: str, scene: str) -> None:
    Channel(_pk(brand_id), f"CHANNEL#{scene}").delete()


def save_channel(brand_id: str, current: Channel, fields: dict, *, extra_checks=None) -> Channel:
    """Rewrite a channel code: it must still exist, and its store and guide must (one transaction)."""
    from chalicelib.errors import NotFound
    channel = Channel(_pk(brand_id), f"CHANNEL#{fields['scene']}", brand_id=brand_id, created_at=current.created_at,
                      **fields)
    tx = Tx()
    refusals: dict[str, Exception] = {}
    if fields.get("store_id"):
        tx.check("store", Store, _pk(brand_id), f"STORE#{fields['store_id']}", condition=Store.pk.exists())
        refusals["store"] = NotFound(f"no store {fields['store_id']}", code="unknown_store")
    if fields.get("guide_id"):
        tx.check("guide", Guide, _pk(brand_id), f"GUIDE#{fields['guide_id']}", condition=Guide.pk.exists())
        refusals["guide"] = NotFound(f"no guide {fields['guide_id']}", code="unknown_guide")
    if extra_checks is not None:
        refusals.update(extra_checks(tx))
    tx.save("channel", channel, condition=Channel.pk.exists())
    refusals["channel"] = NotFound(f"no channel code for scene {fields['scene']}", code="unknown_channel")
    tx.commit(refusals)
    return channel
