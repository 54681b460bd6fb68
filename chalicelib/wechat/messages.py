"""Reading and writing WeChat messages: defused XML or JSON in, dedupe keys, passive replies out."""
from __future__ import annotations

import codecs
import hashlib
import json
import re
from itertools import accumulate
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from chalicelib.wechat.crypto import CallbackError

MAX_BODY_BYTES = 64 * 1024
# WeChat's deepest message is xml > SubscribeMsgPopupEvent > List > TemplateId; anything much deeper
# is not a WeChat message, and unbounded depth would exhaust the stack (RecursionError, a 500).
MAX_DEPTH = 16


class ForbiddenXml(CallbackError):
    status, code = 400, "forbidden_xml"


class MalformedXml(CallbackError):
    status, code = 400, "malformed_xml"


class MalformedJson(CallbackError):
    status, code = 400, "malformed_json"


class BodyTooLarge(CallbackError):
    status, code = 413, "body_too_large"


def check_size(body: bytes | str) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"callback bodies are limited to {MAX_BODY_BYTES} bytes")


def _value(element: Element, depth: int = 0):
    """A leaf's text (stripped: WeChat's card-event samples put spaces around CDATA sections), or a
    dict of the children. Recursion is bounded by MAX_DEPTH, so hostile nesting is a 400, never a 500."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    if depth >= MAX_DEPTH:
        raise MalformedXml(f"elements nest deeper than {MAX_DEPTH} levels")
    out: dict = {}
    for child in children:
        value = _value(child, depth + 1)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


def parse_xml(body: bytes | str) -> dict:
    """The root element's children as a dict (nested elements as dicts, repeated tags as lists).
    No DTDs, no entities, no external references: ForbiddenXml; anything unparsable or nested
    deeper than MAX_DEPTH: MalformedXml."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ForbiddenXml("DOCTYPE, entities and external references are not allowed") from None
    except (ParseError, ValueError, TypeError):
        raise MalformedXml("body is not well-formed XML") from None
    value = _value(root)
    return value if isinstance(value, dict) else {}


# The closing quote is optional so that an unterminated string matches once, to the end, instead of
# being retried from every later quote (quadratic time on a hostile body, which WeCom's unsigned
# outer envelope can be).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_JSON_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_too_deep(text: str) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH, found before json.loads (whose C
    scanner recurses) ever sees the text. A WeChat message has a handful of brackets: no scan at all."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _JSON_BRACKETS.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def _no_surrogates(value):
    """JSON may escape a lone UTF-16 surrogate (a truncated emoji): it cannot be encoded as UTF-8, so
    no hash, key or stored attribute could hold it. Replace it with U+FFFD (depth is already bounded)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes | str) -> dict:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if _json_too_deep(text):
            raise MalformedJson(f"arrays and objects nest deeper than {MAX_DEPTH} levels")
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        raise MalformedJson("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedJson("a JSON message must be an object")
    return _no_surrogates(value) if _ESCAPED_SURROGATE.search(text) else value


def _strip_bom(body: bytes | str) -> bytes | str:
    """Drop a UTF-8 byte-order mark (some stacks write one before the XML or JSON) and leading whitespace
    (an XML declaration must come first)."""
    if isinstance(body, bytes):
        return body[len(codecs.BOM_UTF8):].lstrip() if body.startswith(codecs.BOM_UTF8) else body.lstrip()
    return body.removeprefix("\ufeff").lstrip()


def parse_body(body: bytes | str) -> dict:
    """XML or (mini-program message push) JSON, sniffed from the first character."""
    check_size(body)
    body = _strip_bom(body)
    first = body[:1]
    if first in (b"{", "{"):
        return parse_json(body)
    if first in (b"<", "<"):
        return parse_xml(body)
    raise MalformedXml("body is neither XML nor JSON")


_WECOM_FIELDS = ("ChangeType", "UserID", "ExternalUserID", "ChatId", "UpdateDetail")


def dedupe_key(msg: dict) -> str:
    """What identifies one message across WeChat's retries: MsgId, else sender+time+event+key
    (+ WeCom's change fields). Stable across the XML and JSON forms of the same message."""
    msg_id = msg.get("MsgId") or msg.get("msgid") or msg.get("MsgID")
    if msg_id:
        parts = ["id", str(msg_id)]
    else:
        # Third-party (suite) WeCom callbacks say InfoType/TimeStamp/AuthCorpId where others say
        # Event/CreateTime/FromUserName.
        parts = ["ev", str(msg.get("FromUserName") or msg.get("AuthCorpId") or ""),
                 str(msg.get("CreateTime") or msg.get("TimeStamp") or ""),
                 str(msg.get("Event") or msg.get("InfoType") or ""), str(msg.get("EventKey", ""))]
        if "ChangeType" in msg:
            parts += [str(msg.get(f, "")) for f in _WECOM_FIELDS]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _to_xml(value, tag: str) -> str:
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(_to_xml(v, k) for k, v in value.items()) + f"</{tag}>"
    if isinstance(value, list):
        return "".join(_to_xml(v, tag) for v in value)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        return f"<{tag}>{value}</{tag}>"
    return f"<{tag}>{_cdata('' if value is None else str(value))}</{tag}>"


def to_xml(msg: dict, root: str = "xml") -> str:
    """WeChat-style XML (strings in CDATA, numbers bare); the inverse of parse_xml."""
    return _to_xml(msg, root)


def text_reply(to_user: str, from_user: str, content: str, create_time: int) -> str:
    return to_xml({"ToUserName": to_user, "FromUserName": from_user, "CreateTime": int(create_time),
                   "MsgType": "text", "Content": content})


def encrypted_reply(crypto, reply_xml: str, timestamp: str, nonce: str) -> str:
    """A passive reply in safe mode: the reply encrypted and signed, as WeChat expects it."""
    encrypt = crypto.encrypt(reply_xml.encode())
    return to_xml({"Encrypt": encrypt, "MsgSignature": crypto.sign(timestamp, nonce, encrypt),
                   "TimeStamp": timestamp, "Nonce": nonce})
