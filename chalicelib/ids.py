"""Identifiers: what a caller may choose (validated) and what siyu mints (random, unguessable)."""
from __future__ import annotations

import re
import secrets

from chalicelib.errors import BadRequest

# Caller-chosen ids end up inside DynamoDB keys (`B#<brand>#...`), so '#' and spaces are never allowed.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# WeChat scenes: OA QR_STR_SCENE allows 64 chars, a mini-program code's scene 32 visible chars.
_SCENE = re.compile(r"^[A-Za-z0-9_\-.=&!*()~,:@]{1,64}$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def slug(value: object, field: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise BadRequest(f"{field} must be 1-40 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
                         code="invalid_" + field)
    return value


def scene(value: object, field: str = "scene") -> str:
    if not isinstance(value, str) or not _SCENE.match(value):
        raise BadRequest(f"{field} must be 1-64 characters of letters, digits and -_.=&!*()~,:@",
                         code="invalid_" + field)
    return value


def new_id(prefix: str, random_chars: int = 16) -> str:
    """A random id with `random_chars * 5` bits of entropy, e.g. m_k2v7...; safe in keys and URLs."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(random_chars))
