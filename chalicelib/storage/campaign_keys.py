"""Where campaign items live: the keys of definitions, runs, the ledger, credits and counters."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.members import AUDIENCE_SHARDS

FREQUENCY_RETENTION = timedelta(days=3)

# ---- keys ------------------------------------------------------------------------------------

def campaign_key(brand_id: str, campaign_id: str) -> tuple[str, str]:
    return f"B#{brand_id}", f"CAMPAIGN#{campaign_id}"


def camp_pk(brand_id: str, campaign_id: str) -> str:
    return f"B#{brand_id}#CAMP#{campaign_id}"


def member_shard(member_id: str) -> int:
    """The member's audience shard (domain.members.audience_key): ledger entries are spread the same way."""
    return sum(member_id.encode()) % AUDIENCE_SHARDS


def ledger_key(brand_id: str, campaign_id: str, run_id: str, member_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#DLV#{campaign_id}#{run_id}#{member_shard(member_id):02d}", member_id


def credit_key(brand_id: str, openid: str, template_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#CREDIT#{openid}", template_id


def frequency_key(brand_id: str, member_id: str, day: str) -> tuple[str, str]:
    return f"B#{brand_id}#FREQ#{member_id}", day


def _kind(model_cls):
    """Items first created by an UpdateItem get their `kind` like any put."""
    return model_cls.kind.set(model_cls)


