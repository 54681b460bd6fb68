"""Per-brand WeChat secrets in SSM SecureString parameters, cached per container.

Plain botocore rather than Powertools' parameters utility: that utility imports boto3, which
would add its import time to every cold start for one GetParameter call.
"""
from __future__ import annotations

import json
import os

from chalicelib import aws
from chalicelib.cache import TTLCache
from chalicelib.ids import new_id
from chalicelib.resources import SECRETS_PREFIX_ENV

_cache = TTLCache(ttl_seconds=300)


def prefix() -> str:
    return os.environ.get(SECRETS_PREFIX_ENV, "/siyu/local/brands").rstrip("/")


def put_brand_secrets(brand_id: str, secrets: dict) -> str:
    """Store a new version of a brand's secrets; returns the parameter name to reference.

    Each write gets a fresh name, so a failed or losing brand creation can never overwrite the
    secrets a live brand reads."""
    name = f"{prefix()}/{brand_id}/{new_id('v', 10)}"
    aws.client("ssm").put_parameter(Name=name, Value=json.dumps(secrets), Type="SecureString", Overwrite=False)
    return name


def brand_secrets(ref: str) -> dict:
    def load():
        value = aws.client("ssm").get_parameter(Name=ref, WithDecryption=True)["Parameter"]["Value"]
        return json.loads(value)
    return _cache.get_or_load(ref, load)
