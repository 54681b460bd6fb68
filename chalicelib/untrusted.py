"""JSON text from a caller (request bodies, pagination cursors), decoded in one place.

`json.loads` alone is not enough for text an attacker writes: `[` x 5000 raises RecursionError (not a
ValueError, so it escaped as a 500), and `"\\ud800"` decodes to a string with a lone surrogate that
decodes fine but cannot be encoded as UTF-8 again, so storage or the logger fails later, as a 500
and possibly after part of the work was done. Both are refused here, before anything is read or
written, as are NaN/Infinity (not JSON), numbers too large for a float, and nesting deeper than any
siyu body needs.
"""
from __future__ import annotations

import json
import math
import re

from chalicelib.errors import BadRequest

MAX_DEPTH = 32          # the deepest siyu body (a campaign's message.data values) is 4 levels
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(ValueError):
    pass


def _no_constant(name: str):
    raise _Refused(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):        # 1e400 decodes to inf, which no siyu field can hold
        raise _Refused(f"{text} is out of range")
    return value


def loads(raw: bytes | str, *, what: str = "body", code: str = "malformed_json") -> object:
    """The decoded value; BadRequest(code) for text that is not strict JSON, nests deeper than
    MAX_DEPTH, or holds a lone surrogate in any string or key."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):        # UnicodeDecodeError is a ValueError too
        raise BadRequest(f"{what} is not valid JSON", code=code) from None
    problem = _problem(value)
    if problem:
        raise BadRequest(f"{what} {problem}", code=code)
    return value


def _problem(value: object) -> str | None:
    """Walk without recursion (the value may be as deep as the decoder allowed)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return "holds a lone UTF-16 surrogate (e.g. \\ud800), which is not a character"
        elif isinstance(item, (list, dict)):
            if depth > MAX_DEPTH:
                return f"is nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None
