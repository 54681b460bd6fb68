"""Reading and writing WeChat messages: XML (no DTDs, no entities) or JSON in, dedupe keys, passive replies out."""
from __future__ import annotations

import codecs
import hashlib
import json
import re
from itertools import accumulate
from xml.parsers import expat

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


def _add_child(out: dict, tag: str, value) -> None:
    """A child's value under its tag; a repeated tag's values as a list, in order."""
    if tag in out:
        if not isinstance(out[tag], list):
            out[tag] = [out[tag]]
        out[tag].append(value)
    else:
        out[tag] = value


def _forbidden(*_):
    raise ForbiddenXml("DOCTYPE, entities and external references are not allowed")


def parse_xml(body: bytes | str) -> dict:
    """The root element's children as a dict (nested elements as dicts, repeated tags as lists, a
    leaf's text stripped: WeChat's card-event samples put spaces around CDATA sections).
    No DTDs, no entities, no external references: ForbiddenXml; anything unparsable or nested
    deeper than MAX_DEPTH: MalformedXml.

    The dict is built straight from expat's events, without an ElementTree in between (that tree
    cost as much as the rest of a callback). The refusals are defusedxml's forbid_dtd,
    forbid_entities and forbid_external, set on the same expat ElementTree uses: a DOCTYPE is refused
    where it starts, before any entity in it is declared, so none can be defined, let alone
    expanded (billion laughs); an undefined entity is expat's own well-formedness error. Tags are
    named as ElementTree names them (`{uri}local`), so the result is what defusedxml's tree gave
    (tests/unit/test_callback_xml.py compares the two)."""
    stack: list[list] = []         # the open elements: [tag, children dict (None while a leaf), text parts]
    roots: list = []

    def start(tag: str, _attributes) -> None:
        if len(stack) > MAX_DEPTH:          # checked as elements open: hostile nesting costs nothing
            raise MalformedXml(f"elements nest deeper than {MAX_DEPTH} levels")
        if stack and stack[-1][1] is None:
            stack[-1][1] = {}
        stack.append([tag, None, []])

    def end(_tag: str) -> None:
        tag, children, text = stack.pop()
        value = children if children is not None else "".join(text).strip()
        if "}" in tag:
            tag = "{" + tag
        if not stack:
            roots.append(value)
            return
        _add_child(stack[-1][1], tag, value)

    def characters(data: str) -> None:
        top = stack[-1]
        if top[1] is None:                  # text after an element's first child is not its value
            top[2].append(data)

    parser = expat.ParserCreate(None, "}")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbidden
    parser.EntityDeclHandler = _forbidden
    parser.UnparsedEntityDeclHandler = _forbidden
    parser.ExternalEntityRefHandler = _forbidden
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, ValueError, TypeError):
        raise MalformedXml("body is not well-formed XML") from None
    value = roots[0] if roots else ""
    return value if isinstance(value, dict) else {}


# A message as WeChat writes most of them (every envelope, and events such as subscribe and SCAN):
# <xml>, then flat elements of printable ASCII text (no `<`, `&` or `]`) or one CDATA section (no `<`
# or `]`), then </xml>, with tabs, newlines and spaces between. Such a body is well-formed XML with no
# DTD, entity, character reference, namespace, comment, attribute, carriage return (which XML would
# rewrite) or nesting, so it reads to exactly what parse_xml gives; two C-speed regex passes read it.
# Anything else, however slightly off, goes to parse_xml, which decides (tests/unit/test_callback_xml.py
# holds the two against each other on hostile and mangled bodies).
_FLAT_CDATA_CHARS = r"[\t\n\x20-\x3b\x3d-\x5c\x5e-\x7e]*+"          # printable ASCII, tab, newline; no < ]
_FLAT_TEXT_CHARS = r"[\t\n\x20-\x25\x27-\x3b\x3d-\x5c\x5e-\x7e]*+"     # the same, no & either
_FLAT_ELEMENT = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>(?:<!\[CDATA\[(" + _FLAT_CDATA_CHARS + r")\]\]>|("
                           + _FLAT_TEXT_CHARS + r"))</\1>")
# Possessive (*+): every step has one way to match, so a near miss fails at once instead of backtracking.
_FLAT_BODY = re.compile(r"<xml>(?:[ \t\n]*+<([A-Za-z_][A-Za-z0-9_]*+)>(?:<!\[CDATA\[" + _FLAT_CDATA_CHARS
                        + r"\]\]>|" + _FLAT_TEXT_CHARS + r")</\1>)*+[ \t\n]*+</xml>[ \t\n]*+")


def _flat_xml(body: bytes) -> dict | None:
    """parse_xml's result for a flat ASCII message (above) within the size limit; None for any other body."""
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if _FLAT_BODY.fullmatch(text) is None:
        return None
    out: dict = {}
    for tag, cdata, plain in _FLAT_ELEMENT.findall(text, len("<xml>")):   # the root's children, in order
        _add_child(out, tag, (cdata or plain).strip())
    return out


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
        flat = _flat_xml(body) if isinstance(body, bytes) else None
        return parse_xml(body) if flat is None else flat
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
