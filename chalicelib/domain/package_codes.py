"""Package codes (包裹卡, issue 11 §2): a batch's request, and the codes themselves. Pure.

Code i of a batch is the first 20 base32 characters of HMAC-SHA256(batch secret, i): 100 bits that
cannot be guessed without the secret (kept in the batch item, never shown), the same every time
they are derived, so a worker that dies mid-page and mints that page again writes the same codes
(no duplicate, nothing lost), and the printer's CSV is derived, not read back. The scene
`pk.<code>` (23 characters) fits a mini-program scene's 32.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re

from chalicelib import ids
from chalicelib.errors import BadRequest

MAX_COUNT = 100_000
CODE_CHARS = 20
PREFIX = "pk."
PAGE = 1_000                       # codes per worker page (one checkpoint each)
_CODE = re.compile(r"[a-z2-7]{%d}" % CODE_CHARS)


def request(body: dict) -> dict:
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise BadRequest(f"count must be a whole number from 1 to {MAX_COUNT}", code="invalid_count")
    reward = body.get("reward")
    if not isinstance(reward, dict) or not isinstance(reward.get("coupon_template_id"), str) or not ids.minted(
            reward["coupon_template_id"]):
        raise BadRequest("reward must be {coupon_template_id}", code="invalid_reward")
    return {"batch_id": ids.slug(body.get("batch_id"), "batch_id"), "count": count,
            "channel": ids.scene(body.get("channel"), "channel"), "coupon_template_id": reward["coupon_template_id"]}


def code(secret: bytes, index: int) -> str:
    return codes(secret, index, index + 1)[0]


def codes(secret: bytes, start: int, stop: int) -> list[str]:
    keyed = hmac.new(secret, digestmod=hashlib.sha256)    # the key schedule once, copied per code
    out = []
    for index in range(start, stop):
        mac = keyed.copy()
        mac.update(f"pk:{index}".encode())
        out.append(base64.b32encode(mac.digest()[:15]).decode().lower())   # 15 bytes = 24 chars, 20 kept
    return [c[:CODE_CHARS] for c in out]


def scene(code_value: str) -> str:
    return PREFIX + code_value


def is_package_scene(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def code_of(scene_value: str) -> str | None:
    """The code a `pk.` scene carries, or None when it cannot be one (an unknown code all the same)."""
    candidate = scene_value[len(PREFIX):]
    return candidate if _CODE.fullmatch(candidate) else None


def pages(count: int) -> int:
    return -(-count // PAGE)


def page_range(page: int, count: int) -> tuple[int, int]:
    return page * PAGE, min(count, (page + 1) * PAGE)
