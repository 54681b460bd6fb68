"""Identifiers: what a caller may choose (validated) and what siyu mints (random, unguessable)."""
from __future__ import annotations

import base64
import re
import secrets

from chalicelib.errors import BadRequest, NotFound

# Patterns are applied with fullmatch: `$` also matches before a trailing "\n", so "acme\n" passed.
# Caller-chosen ids end up inside DynamoDB keys (`B#<brand>#...`), so '#' and spaces are never allowed.
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
# WeChat scenes: OA QR_STR_SCENE allows 64 chars, a mini-program code's scene 32 visible chars.
_SCENE = re.compile(r"[A-Za-z0-9_\-.=&!*()~,:@]{1,64}")
# WeChat identities (openid 28 chars, unionid 29, WeCom external_userid 32-ish, a WeCom UserID up to 64)
# as WeChat sends them and a caller looks them up: one rule for both, so every member a callback makes
# can be found. Liberal in the characters (WeChat does not promise its alphabet), strict in the length:
# 128 characters are at most 512 UTF-8 bytes, well inside DynamoDB's 1 KB sort / 2 KB partition keys.
IDENTITY_MAX_CHARS = 128
_IDENTITY = re.compile(r"\S{1,%d}" % IDENTITY_MAX_CHARS)
# Ids another system chose (a till's order and refund numbers, an ERP's SKUs): letters, digits and
# _-.: only (never '#', the key separator, nor '/', which no path could carry), starting with a
# letter or digit, at most 64 characters.
_EXTERNAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
# What new_id mints (a short prefix, '_', base32), with room to spare.
_MINTED = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The ids a route's path may name, and the 404 a malformed one gets: such an id names nothing siyu
# stores, and an oversized one would reach DynamoDB as a key it refuses (2 KB / 1 KB) with a 500.
PATH_IDS = {"brand_id": (_SLUG, "unknown_brand"), "store_id": (_SLUG, "unknown_store"),
            "template_id": (_MINTED, "unknown_coupon_template"), "campaign_id": (_MINTED, "unknown_campaign"),
            "redemption_id": (_MINTED, "unknown_redemption"), "order_id": (_EXTERNAL, "unknown_order"),
            "scene": (_SCENE, "unknown_channel"),
            "console_file": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"), "unknown_page")}
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def slug(value: object, field: str) -> str:
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise BadRequest(f"{field} must be 1-40 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
                         code="invalid_" + field)
    return value


def scene(value: object, field: str = "scene") -> str:
    if not isinstance(value, str) or not _SCENE.fullmatch(value):
        raise BadRequest(f"{field} must be 1-64 characters of letters, digits and -_.=&!*()~,:@",
                         code="invalid_" + field)
    return value


def external(value: object, field: str) -> str:
    """An id another system chose (order, refund, till, SKU): full-matched and bounded."""
    if not isinstance(value, str) or not _EXTERNAL.fullmatch(value):
        raise BadRequest(f"{field} must be 1-64 characters of letters, digits and _-.:, starting with a letter or digit",
                         code="invalid_" + field)
    return value


def is_identity(value: object) -> bool:
    """Whether `value` can be a WeChat identity siyu keys items by: 1-128 printable characters, no spaces."""
    return isinstance(value, str) and _IDENTITY.fullmatch(value) is not None and value.isprintable()


def identity(value: object, field: str) -> str:
    """A WeChat openid / unionid / external_userid a caller gives (a query parameter): bounded, so it
    never reaches DynamoDB as an oversized key."""
    if not is_identity(value):
        raise BadRequest(f"{field} must be 1-{IDENTITY_MAX_CHARS} printable characters without spaces",
                         code="invalid_" + field)
    return value


def minted(value: object) -> bool:
    """Whether `value` could be an id new_id minted (bounded, so it is safe in a DynamoDB key)."""
    return isinstance(value, str) and _MINTED.fullmatch(value) is not None


def path_params(params: dict) -> None:
    """Refuse, before any read, a path parameter that cannot be the id it names (404, the same code
    as for an id that does not exist)."""
    for name, value in params.items():
        pattern, code = PATH_IDS.get(name, (_MINTED, "not_found"))
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise NotFound(f"no such {name.removesuffix('_id')}", code=code)


def new_id(prefix: str, random_chars: int = 16) -> str:
    """A random id with `random_chars * 5` bits of entropy, e.g. m_k2v7...; safe in keys and URLs.
    Base32 of random bytes is _ALPHABET (upper-cased), 5 random bits a character: one call to the OS
    instead of one secrets.choice per character (a tenth of a coupon claim's own CPU)."""
    raw = secrets.token_bytes((random_chars * 5 + 7) // 8)
    return prefix + "_" + base64.b32encode(raw).decode("ascii")[:random_chars].lower()
