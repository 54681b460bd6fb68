"""Reading and writing WeChat messages: defused XML or JSON in, dedupe keys, passive replies out."""
from __future__ import annotations

import hashlib
import json
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from chalicelib.wechat.crypto import CallbackError

MAX_BODY_BYTES = 64 * 1024


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


def _value(element: Element):
    children = list(element)
    if not children:
        return element.text or ""
    out: dict = {}
    for child in children:
        value = _value(child)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


def parse_xml(body: bytes | str) -> dict:
    """The root element's children as a dict (nested elements as dicts, repeated tags as lists).
    No DTDs, no entities, no external references: ForbiddenXml; anything unparsable: MalformedXml."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ForbiddenXml("DOCTYPE, entities and external references are not allowed") from None
    except (ParseError, ValueError, TypeError):
        raise MalformedXml("body is not well-formed XML") from None
    value = _value(root)
    return value if isinstance(value, dict) else {}


def parse_json(body: bytes | str) -> dict:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedJson("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedJson("a JSON message must be an object")
    return value


def parse_body(body: bytes | str) -> dict:
    """XML or (mini-program message push) JSON, sniffed from the first character."""
    check_size(body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    first = text.lstrip()[:1]
    if first == "{":
        return parse_json(body)
    if first == "<":
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
