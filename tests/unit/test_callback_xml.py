"""The callback XML readers that replaced defusedxml, held against it and against hostile bodies.

parse_xml builds its dict straight from expat with defusedxml's refusals; _flat_xml reads the flat ASCII
messages WeChat writes most (every envelope) with two regexes. Neither may accept what the defusedxml
reader refused, nor read anything differently: the reference below is that reader as it was
(chalicelib/wechat/messages.py before issue 10), with defusedxml pinned in requirements-test.txt.
"""
import base64
import os
import random
import threading
from pathlib import Path
from xml.etree.ElementTree import ParseError

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from chalicelib.errors import ApiError
from chalicelib.services.callbacks import open_callback
from chalicelib.services.wechat_apps import App
from chalicelib.wechat import crypto, messages
from siyu_dev import phone

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECOM = App("b", "wecom", "wwcorp0001", "s", "tok123", KEY)
OA = App("b", "oa", "wxapp0001", "s", "tok123", KEY)


# ---- the reference: the defusedxml reader as it was -------------------------------------------

def _reference_value(element, depth=0):
    children = list(element)
    if not children:
        return (element.text or "").strip()
    if depth >= messages.MAX_DEPTH:
        raise messages.MalformedXml("nest")
    out = {}
    for child in children:
        value = _reference_value(child, depth + 1)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


def reference_parse_xml(body):
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise messages.ForbiddenXml("forbidden") from None
    except (ParseError, ValueError, TypeError):
        raise messages.MalformedXml("malformed") from None
    value = _reference_value(root)
    return value if isinstance(value, dict) else {}


def reference_parse_body(body):
    """parse_body as it was: size, BOM, then defusedxml for anything starting with `<`."""
    messages.check_size(body)
    body = messages._strip_bom(body)
    if body[:1] in (b"<", "<"):
        return reference_parse_xml(body)
    return messages.parse_body(body)


def outcome(parse, body):
    """What a reader makes of a body: ("ok", dict) or ("refused", the error's code)."""
    try:
        return "ok", parse(body)
    except messages.CallbackError as err:
        return "refused", err.code


# ---- bodies: real samples, hostile ones, odd but legal ones --------------------------------------

def _samples() -> dict[str, bytes]:
    return {f"{p.parent.name}/{p.name}": p.read_bytes()
            for folder in ("wechat-samples", "callbacks") for p in sorted((FIXTURES / folder).glob("*.xml"))}


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b"]><xml><Content>&lol9;</Content></xml>")

HOSTILE = {
    "doctype": b"<!DOCTYPE xml><xml><A>1</A></xml>",
    "internal entity": b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><A>&e;</A></xml>',
    "internal entity declared, unused": b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><A>1</A></xml>',
    "external entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                       b"<xml><A>&e;</A></xml>",
    "external dtd": b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><A>1</A></xml>',
    "public dtd": b'<!DOCTYPE xml PUBLIC "-//X//Y" "http://127.0.0.1:9/evil.dtd"><xml><A>1</A></xml>',
    "parameter entity": b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><xml><A>1</A></xml>',
    "unparsed entity": b'<!DOCTYPE x [<!NOTATION n SYSTEM "n"><!ENTITY u SYSTEM "u" NDATA n>]><xml/>',
    "billion laughs": BILLION_LAUGHS,
    "quadratic blowup": b'<!DOCTYPE x [<!ENTITY a "' + b"A" * 5000 + b'">]><xml><A>' + b"&a;" * 2000
                        + b"</A></xml>",
    "doctype in UTF-16": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "x">]><xml><A>&e;</A>'
                         "</xml>".encode("utf-16"),
    "undefined entity": b"<xml><A>&e;</A></xml>",
    "undefined entity in an envelope": b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt><A>&e;</A></xml>",
    "unbound namespace prefix": b"<xml><x:A>1</x:A></xml>",
    "mismatched close": b"<xml><A>1</B></xml>",
    "unclosed root": b"<xml><A>1</A>",
    "two roots": b"<xml><A>1</A></xml><xml/>",
    "junk after root": b"<xml><A>1</A></xml>junk",
    "text holding ]]>": b"<xml><A>a]]>b</A></xml>",
    "form feed": b"<xml><A>a\x0cb</A></xml>",
    "nul": b"<xml><A>a\x00b</A></xml>",
    "invalid utf-8": b"<xml><A>\xff</A></xml>",
    "encoded lone surrogate": b"<xml><A>\xed\xa0\x80</A></xml>",
    "surrogate char ref": b"<xml><A>&#xD800;</A></xml>",
    "unterminated cdata": b"<xml><A><![CDATA[abc</A></xml>",
    "duplicate attribute": b'<xml><A b="1" b="2">1</A></xml>',
    "nesting past the cap": b"<xml>" + b"<a>" * 40 + b"</a>" * 40 + b"</xml>",
    "gbk declared": b'<?xml version="1.0" encoding="GBK"?><xml><A>\xc4\xe3</A></xml>',
    "empty": b"",
    "oversize": b"<xml><A>" + b"x" * (70 * 1024) + b"</A></xml>",
}

LEGAL = {
    "namespaced": b'<xml xmlns:w="urn:w"><w:A>1</w:A><B xmlns="urn:d">2</B></xml>',
    "attributes": b'<xml a="1"><A b="2">3</A></xml>',
    "mixed content": b"<xml>lead<A>1</A>tail<B>x<C>2</C>y</B></xml>",
    "comments and PIs": b"<?xml version='1.0'?><!-- c --><xml><?pi x?><A><!-- c -->1</A></xml><!-- after -->",
    "char refs and predefined entities": b"<xml><A>&lt;&amp;&#65;&#x42;&quot;&apos;&gt;</A></xml>",
    "split cdata": b"<xml><A><![CDATA[a]]]]><![CDATA[>b]]></A></xml>",
    "crlf": b"<xml>\r\n<A>a\r\nb\rc</A>\r\n</xml>",
    "empty elements": b"<xml><A/><B></B><C><![CDATA[]]></C></xml>",
    "repeated and nested": b"<xml><L><I>1</I><I>2</I></L><L><I>3</I></L></xml>",
    "deep as allowed": b"<xml>" + b"<a>" * 16 + b"1" + b"</a>" * 16 + b"</xml>",
    "other root": b"<root><A>1</A></root>",
    "childless root": b"<xml>text</xml>",
    "non-ascii": "<xml><Content><![CDATA[你好]]></Content><B>é</B></xml>".encode(),
    "latin-1 declared": b'<?xml version="1.0" encoding="ISO-8859-1"?><xml><A>\xe9</A></xml>',
    "utf-16": '<xml><A>你好</A></xml>'.encode("utf-16"),
    "bom": b"\xef\xbb\xbf<xml><A>1</A></xml>",
    "whitespace around": b"  \n<xml> <A> 1 </A>\t</xml>\n ",
    "tab and space in text": b"<xml><A>a\tb c</A></xml>",
    "odd names": b"<xml><_a.b-c>1</_a.b-c><A1>2</A1></xml>",
    "envelope": b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[QUJD+/==]]></Encrypt></xml>",
}


@pytest.mark.parametrize("name", sorted(_samples()))
def test_every_sample_reads_as_defusedxml_read_it(name):
    body = _samples()[name]
    assert outcome(messages.parse_body, body) == outcome(reference_parse_body, body)
    assert outcome(messages.parse_body, body)[0] == "ok"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_are_refused_as_defusedxml_refused_them(name):
    body = HOSTILE[name]
    ours, reference = outcome(messages.parse_body, body), outcome(reference_parse_body, body)
    assert ours[0] == "refused", ours
    assert ours == reference
    assert messages._flat_xml(body) is None


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_odd_but_legal_bodies_read_as_defusedxml_read_them(name):
    body = LEGAL[name]
    assert outcome(messages.parse_xml, body) == outcome(reference_parse_xml, body)
    assert outcome(messages.parse_xml, body)[0] == "ok"
    assert outcome(messages.parse_body, body) == outcome(reference_parse_body, body)     # UTF-16: not sniffed
    text = body.decode("utf-16") if name == "utf-16" else body.decode("latin-1")
    if name not in ("utf-16", "latin-1 declared"):        # a str body says its encoding by being one
        assert outcome(messages.parse_body, text) == outcome(reference_parse_body, text)


# ---- the expat reader's refusals, one by one ------------------------------------------------------

@pytest.mark.parametrize("name", ["doctype", "internal entity", "internal entity declared, unused", "external entity",
                                  "external dtd", "public dtd", "parameter entity", "unparsed entity",
                                  "billion laughs", "quadratic blowup", "doctype in UTF-16"])
def test_the_expat_reader_refuses_dtds_and_entities(name):
    with pytest.raises(messages.ForbiddenXml) as err:
        messages.parse_xml(HOSTILE[name])
    assert err.value.status == 400 and err.value.code == "forbidden_xml"
    with pytest.raises(messages.ForbiddenXml):
        messages.parse_xml(HOSTILE[name].decode("utf-16") if name == "doctype in UTF-16" else HOSTILE[name].decode())


def test_billion_laughs_is_refused_before_any_entity_is_expanded():
    expanded = []
    original = messages.expat.ParserCreate

    def spying(*args):
        parser = original(*args)
        parser.DefaultHandlerExpand = expanded.append       # sees entity text if expat ever expanded one
        return parser

    messages.expat.ParserCreate = spying
    try:
        with pytest.raises(messages.ForbiddenXml):
            messages.parse_xml(BILLION_LAUGHS)
    finally:
        messages.expat.ParserCreate = original
    assert not any("lol" in chunk for chunk in expanded)


def test_an_undefined_entity_is_malformed_and_predefined_ones_read():
    with pytest.raises(messages.MalformedXml):
        messages.parse_xml(b"<xml><A>&nbsp;</A></xml>")
    assert messages.parse_xml(b"<xml><A>a&amp;b&#20320;</A></xml>") == {"A": "a&b你"}


def test_oversize_bodies_are_refused_before_parsing():
    with pytest.raises(messages.BodyTooLarge) as err:
        messages.parse_body(HOSTILE["oversize"])
    assert err.value.status == 413
    at_limit = b"<xml><A>" + b"x" * (messages.MAX_BODY_BYTES - 18) + b"</A></xml>"
    assert len(at_limit) == messages.MAX_BODY_BYTES and len(messages.parse_body(at_limit)["A"]) > 60_000


def test_nesting_is_capped_as_elements_open():
    with pytest.raises(messages.MalformedXml) as err:
        messages.parse_xml(b"<xml>" + b"<a>" * 17 + b"</a>" * 17 + b"</xml>")
    assert "nest" in err.value.message
    assert messages.parse_xml(b"<xml>" + b"<a>" * 16 + b"1" + b"</a>" * 16 + b"</xml>")


# ---- the flat reader never reads what the full reader would not ----------------------------------

def _envelope(encrypt: str = "QUJDREVGR0g=") -> bytes:
    return b"<xml><ToUserName><![CDATA[wwcorp0001]]></ToUserName><Encrypt><![CDATA[" + encrypt.encode() \
        + b"]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"


MALFORMED_ENVELOPES = {
    "Encrypt text inside another element's CDATA": b"<xml><ToUserName><![CDATA[<Encrypt>QUJD</Encrypt>]]>"
                                                    b"</ToUserName></xml>",
    "Encrypt nested": b"<xml><A><Encrypt>QUJD</Encrypt></A></xml>",
    "unclosed": _envelope()[:-6],
    "wrong close": _envelope().replace(b"</Encrypt>", b"</Encrypted>"),
    "close case differs": _envelope().replace(b"</xml>", b"</XML>"),
    "entity beside Encrypt": _envelope().replace(b"<AgentID><![CDATA[]]></AgentID>", b"<AgentID>&x;</AgentID>"),
    "doctype before": b'<!DOCTYPE xml [<!ENTITY x "y">]>' + _envelope(),
    "junk after": _envelope() + b"<xml/>",
    "control byte": _envelope().replace(b"wwcorp0001", b"wwcorp\x010001"),
    "invalid utf-8": _envelope().replace(b"wwcorp0001", b"wwcorp\xff0001"),
    "]]> in text": b"<xml><A>]]></A><Encrypt>QUJD</Encrypt></xml>",
    "unterminated CDATA": b"<xml><Encrypt><![CDATA[QUJD</Encrypt></xml>",
    "attribute on root": _envelope().replace(b"<xml>", b'<xml a="1" a="2">'),
    "vertical tab between": _envelope().replace(b"<Encrypt>", b"\x0b<Encrypt>"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_ENVELOPES))
def test_the_flat_reader_leaves_every_malformed_envelope_to_the_full_reader(name):
    body = MALFORMED_ENVELOPES[name]
    assert messages._flat_xml(body) is None
    ours = outcome(messages.parse_body, body)
    assert ours == outcome(reference_parse_body, body)
    assert ours[0] == "refused" or not isinstance(ours[1].get("Encrypt"), str) or ours[1]["Encrypt"] == "QUJD"


NEAR_FLAT = {
    "carriage return in text": b"<xml><A>a\rb</A></xml>",
    "crlf in text": b"<xml><A>a\r\nb</A></xml>",
    "crlf in cdata": b"<xml><A><![CDATA[a\r\nb]]></A></xml>",
    "crlf between": b"<xml>\r\n<A>1</A>\r\n</xml>\r\n",
    "char ref": b"<xml><A>&#65;</A></xml>",
    "predefined entity": b"<xml><A>&amp;</A></xml>",
    "gt in text": b"<xml><A>a>b</A></xml>",
    "lt in cdata": b"<xml><A><![CDATA[a<b]]></A></xml>",
    "bracket in cdata": b"<xml><A><![CDATA[a]b]]></A></xml>",
    "two cdata sections": b"<xml><A><![CDATA[a]]><![CDATA[b]]></A></xml>",
    "text around cdata": b"<xml><A> x<![CDATA[a]]></A></xml>",
    "empty element tag": b"<xml><A/></xml>",
    "space in tag": b"<xml><A >1</A ></xml>",
    "del char": b"<xml><A>a\x7fb</A></xml>",
    "xml declaration": b'<?xml version="1.0" encoding="UTF-8"?><xml><A>1</A></xml>',
    "empty root": b"<xml></xml>",
    "whitespace-only root": b"<xml> \n\t</xml>",
}


@pytest.mark.parametrize("name", sorted(NEAR_FLAT))
def test_bodies_next_to_the_flat_shape_read_as_the_full_reader_reads_them(name):
    body = NEAR_FLAT[name]
    assert messages.parse_xml(body) == reference_parse_xml(body)
    assert messages._flat_xml(body) in (None, messages.parse_xml(body))
    assert messages.parse_body(body) == messages.parse_xml(body)


def test_mangled_envelopes_and_messages_read_alike_or_go_to_the_full_reader():
    """Thousands of one- and two-byte manglings of real bodies: whenever the flat reader answers, the
    full reader and defusedxml give that same answer."""
    rng = random.Random(10)
    pieces = [b"<", b">", b"/", b"&", b";", b"!", b"[", b"]", b"]]>", b"<![CDATA[", b"\r", b"\n", b"\t", b" ",
              b"\x00", b"\x0c", b"\x7f", b"\xff", "é".encode(), b'"', b"=", b"a", b":", b"?", b"-", b"&amp;",
              b"<!--", b"-->", b"</A>", b"<A>", b"</xml>", b"<xml>", b"Encrypt"]
    bases = [_envelope(), phone.build_callback(phone.oa_subscribe(app_username="gh", openid="o1", scene="S1",
                                                                  create_time=1), token="t", receive_id="wx1",
                                               encoding_aes_key=KEY, mode="safe").body,
             messages.to_xml(phone.oa_subscribe(app_username="gh", openid="o1", scene="S1", create_time=1)).encode(),
             (FIXTURES / "callbacks" / "oa_user_get_card_spaced_cdata.xml").read_bytes()]
    answered = 0
    for _ in range(4000):
        body = bytearray(rng.choice(bases))
        for _ in range(rng.choice((1, 2))):
            at = rng.randrange(len(body) + 1)
            cut = rng.choice((0, 0, 1, 3))
            body[at:at + cut] = rng.choice(pieces)
        body = bytes(body)
        flat = messages._flat_xml(body)
        if flat is not None:
            answered += 1
            assert messages.parse_xml(body) == flat == reference_parse_xml(body), body
        assert outcome(messages.parse_body, body) == outcome(reference_parse_body, body), body
    assert answered > 200          # the manglings do reach the flat reader, not only its refusals


@pytest.mark.parametrize("name", ["entity beside Encrypt", "doctype before", "junk after", "unclosed",
                                  "invalid utf-8"])
def test_a_wecom_callback_whose_envelope_is_malformed_is_refused_though_its_ciphertext_is_signed(name):
    inner = messages.to_xml(phone.wecom_add_external_contact(corp_id=WECOM.app_id, user_id="u", external_userid="e",
                                                             create_time=1000)).encode()
    cb = phone.build_raw_callback(inner, token=WECOM.token, receive_id=WECOM.app_id, encoding_aes_key=KEY,
                                  wecom=True, timestamp=1000)
    encrypt = messages.parse_body(cb.body)["Encrypt"]
    assert open_callback(WECOM, cb.query, _envelope(encrypt), now=1000).msg["ExternalUserID"] == "e"
    body = MALFORMED_ENVELOPES[name].replace(b"QUJDREVGR0g=", encrypt.encode())
    assert encrypt.encode() in body
    with pytest.raises((messages.CallbackError, ApiError)) as err:
        open_callback(WECOM, cb.query, body, now=1000)
    assert err.value.status == 400 and err.value.code in ("malformed_xml", "forbidden_xml")


def test_a_repeated_encrypt_reads_as_a_list_either_way_and_is_refused():
    body = b"<xml><Encrypt>QUJD</Encrypt><Encrypt>REVG</Encrypt></xml>"
    assert messages._flat_xml(body) == messages.parse_xml(body) == reference_parse_xml(body) == {
        "Encrypt": ["QUJD", "REVG"]}
    cb = phone.build_raw_callback(b"<xml/>", token=OA.token, receive_id=OA.app_id, encoding_aes_key=KEY, mode="safe",
                                  timestamp=1000)
    with pytest.raises(ApiError) as err:
        open_callback(OA, cb.query, body, now=1000)
    assert err.value.status == 400 and err.value.code == "missing_encrypt"


def test_an_envelope_with_encrypt_only_inside_cdata_is_missing_encrypt():
    inner = b"<xml><MsgType>text</MsgType></xml>"
    cb = phone.build_raw_callback(inner, token=OA.token, receive_id=OA.app_id, encoding_aes_key=KEY, mode="safe",
                                  timestamp=1000)
    encrypt = messages.parse_body(cb.body)["Encrypt"]
    body = b"<xml><ToUserName><![CDATA[<Encrypt>" + encrypt.encode() + b"</Encrypt>]]></ToUserName></xml>"
    with pytest.raises(ApiError) as err:
        open_callback(OA, cb.query, body, now=1000)
    assert err.value.status == 400 and err.value.code == "missing_encrypt"


# ---- the cached decryption context is CBC ----------------------------------------------------------

def test_the_kept_decryption_context_decrypts_as_cbc_for_every_key_size_and_thread():
    keys = [os.urandom(32) for _ in range(3)]
    rng = random.Random(7)
    cases = []
    for i in range(300):
        key = keys[i % 3]
        plain = os.urandom(16 * rng.randrange(1, 40))
        enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        cases.append((key, enc.update(plain) + enc.finalize(), plain))
    for key, raw, plain in cases:
        assert crypto._cbc_decryptor(key).decrypt(raw) == plain
    failures = []

    def worker(offset):
        for key, raw, plain in cases[offset:] + cases[:offset]:
            if crypto._cbc_decryptor(key).decrypt(raw) != plain:
                failures.append(offset)

    threads = [threading.Thread(target=worker, args=(n * 37,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_a_box_decrypts_what_the_library_encrypts_after_other_apps_used_the_cache():
    other = crypto.MessageCrypto("tok", base64.b64encode(os.urandom(32)).decode()[:43], "wxother")
    other.decrypt(other.encrypt(b"warm the cache with another key"))
    box = crypto.MessageCrypto("tok", KEY, "wx1")
    for size in (0, 1, 15, 16, 100, 4000):
        message = os.urandom(size)
        assert box.decrypt(box.encrypt(message)) == message
        assert other.decrypt(other.encrypt(message)) == message
