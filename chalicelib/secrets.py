"""Per-brand WeChat secrets in SSM SecureString parameters, cached per container.

Plain botocore rather than Powertools' parameters utility: that utility imports boto3, which
would add its import time to every cold start for one GetParameter call.
"""
from __future__ import annotations

import json
import os

from chalicelib import aws
from chalicelib.cache import TTLCache
from chalicelib.errors import NotFound
from chalicelib.ids import new_id
from chalicelib.resources import SECRETS_PREFIX_ENV

_cache = TTLCache(ttl_seconds=300)


def prefix() -> str:
    return os.environ.get(SECRETS_PREFIX_ENV, "/siyu/local/brands").rstrip("/")


def new_ref(brand_id: str) -> str:
    """A fresh parameter name for a brand's secrets. Each creation gets its own, so a failed or
    losing brand creation can never overwrite (or, cleaning up, delete) the secrets a live brand reads."""
    return f"{prefix()}/{brand_id}/{new_id('v', 10)}"


def put_brand_secrets(ref: str, secrets: dict) -> None:
    """Write the secrets a brand item names (`ref` from new_ref; never overwrites)."""
    ssm = aws.client("ssm")
    value = json.dumps(secrets)
    try:
        ssm.put_parameter(Name=ref, Value=value, Type="SecureString", Overwrite=False)
    except ssm.exceptions.ParameterAlreadyExists:
        # botocore retries a put whose answer was lost; the retry then finds the first attempt's
        # write. The name is this creation's own, so the same value there means it is written.
        if ssm.get_parameter(Name=ref, WithDecryption=True)["Parameter"]["Value"] != value:
            raise


def delete_brand_secrets(ref: str) -> None:
    """Remove a brand's secrets; a parameter that was never written is already gone."""
    ssm = aws.client("ssm")
    try:
        ssm.delete_parameter(Name=ref)
    except ssm.exceptions.ParameterNotFound:
        pass
    _cache.invalidate(ref)


def brand_secrets(ref: str) -> dict:
    """The secrets a brand item names. A brand whose creation failed and could not be undone names a
    parameter that was never written: that brand was never created (404 unknown_brand), not a 500."""
    def load():
        ssm = aws.client("ssm")
        try:
            value = ssm.get_parameter(Name=ref, WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise NotFound("this brand's creation did not complete", code="unknown_brand") from None
        return json.loads(value)
    return _cache.get_or_load(ref, load)
