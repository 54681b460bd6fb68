"""A WeChat + WeCom server-API simulator on 127.0.0.1, for the local stack and the tests.

It answers like WeChat (HTTP 200 with `errcode`/`errmsg`), keeps real token semantics (stable_token
vs token, 40001 / 42001), one-time login codes, users with or without a unionid, QR codes as real PNGs,
and records what it accepted. Control endpoints under `/__sim/` inject faults and latency and read
the log:

    GET  /__sim/sent     every send answered errcode 0: {api, app_id, touser, template_id, data, at}
    POST /__sim/faults   {"api", "errcode", "rate", "latency_ms", "http_status"?}
    GET  /__sim/calls    {path: count} for every call, token fetches included; ?app_id= counts one app's
    POST /__sim/reset    clears log, counters, faults, codes, users, apps and tokens
    POST /__sim/codes    {"openid", "unionid"?, "app_id"?} -> {"code"} (one-time wx.login code)
    POST /__sim/users    {"app_id", "openid", "unionid"?, "blocked"?} or {"corp_id", "external_userid", ...}
    POST /__sim/apps     {"app_id", "secret"}: from then on a wrong secret is refused (40125)
    POST /__sim/expire_token {"app_id"}: the app's current token becomes invalid (next use: 40001)

    python -m siyu_dev.wechat_sim --port 8900
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from siyu_dev.listen import PortInUse, adopt, listen

log = logging.getLogger("siyu.wechat_sim")
TOKEN_TTL = 7200
ERRMSG = {-1: "system error", 45009: "reach max api daily quota limit", 45011: "api minute-quota reach limit",
          40001: "invalid credential, access_token is invalid or not latest", 42001: "access_token expired",
          41001: "access_token missing", 40125: "invalid appsecret", 40029: "invalid code", 40163: "code been used",
          40003: "invalid openid", 43101: "user refuse to accept the msg", 47001: "data format error",
          40037: "invalid template_id", 40129: "invalid scene", 40096: "invalid external userid",
          41051: "welcome code expired or used"}
SEND_APIS = {"cgi-bin/message/subscribe/send", "cgi-bin/message/template/send", "cgi-bin/message/custom/send",
             "cgi-bin/externalcontact/send_welcome_msg", "cgi-bin/externalcontact/add_msg_template"}


class State:
    def __init__(self, seed: int = 0):
        self.lock = threading.Lock()
        self.reset(seed)

    def reset(self, seed: int = 0) -> None:
        self.random = random.Random(seed)
        self.sent: list[dict] = []
        self.calls: dict[str, int] = {}
        self.calls_by_app: dict[tuple[str | None, str], int] = {}
        self.faults: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}            # code -> {openid, unionid, used}
        self.users: dict[tuple[str, str], dict] = {}  # (app_id|corp_id, openid|external_userid) -> user
        self.apps: dict[str, str] = {}               # app_id -> secret
        self.current: dict[str, str] = {}            # app_id -> current token
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (app_id, issued_at)
        self.welcome_codes_used: set[str] = set()
        self.guides = None                            # siyu_dev.wecom_guides_sim, made on first use
        self.extra: dict = {}                        # state of the modules below that add APIs (CONTROL)


class Reply(Exception):
    def __init__(self, status: int, payload, content_type: str = "application/json"):
        self.status, self.payload, self.content_type = status, payload, content_type


def _err(code: int) -> Reply:
    return Reply(200, {"errcode": code, "errmsg": ERRMSG.get(code, "error")})


def _png(text: str) -> bytes:
    import segno
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=4)
    return out.getvalue()


class WeChatSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0):
        self.host, self.port = host, port
        self.state = State(seed)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, listening: socket.socket | None = None) -> str:
        """Serve on `listening` (a bound socket from siyu_dev.listen) or bind host:port now."""
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes; with Nagle on, the body waits ~40 ms for the
            # client's delayed ACK on every keep-alive call
            disable_nagle_algorithm = True

            def log_message(self, fmt, *args):
                if os.environ.get("SIYU_SIM_LOG"):
                    log.info(fmt, *args)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def _serve(self, method: str):
                url = urlparse(self.path)
                path = url.path.strip("/")
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    sim.handle(method, path, query, body)
                    reply = Reply(404, {"errcode": 404, "errmsg": f"no such path {path}"})
                except Reply as r:
                    reply = r
                data = reply.payload if isinstance(reply.payload, bytes) else json.dumps(
                    reply.payload, ensure_ascii=False).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        if listening is None:
            listening = listen(self.host, self.port, "SIYU_WECHAT_PORT")
        # a sender opens dozens of connections at once: the socket listens with a backlog for that
        self._server = ThreadingHTTPServer(listening.getsockname(), Handler, bind_and_activate=False)
        adopt(self._server, listening)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="wechat-sim", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- request handling ---------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, body: bytes) -> None:
        """Raises Reply; returning means 404."""
        st = self.state
        if path.startswith("__sim/"):
            self._control(method, path[6:], query, body)
            return
        with st.lock:
            st.calls[path] = st.calls.get(path, 0) + 1
            caller = (self._caller(query, body), path)
            st.calls_by_app[caller] = st.calls_by_app.get(caller, 0) + 1
            fault = st.faults.get(path)
            hit = fault is not None and st.random.random() < float(fault.get("rate") or 0)
        if fault and fault.get("latency_ms"):
            time.sleep(float(fault["latency_ms"]) / 1000)
        if hit:
            if fault.get("http_status"):
                raise Reply(int(fault["http_status"]), {"errmsg": "injected"})
            if fault.get("errcode") is not None:
                raise _err(int(fault["errcode"]))
        payload = None
        if method == "POST" and path not in ("cgi-bin/showqrcode",):
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                raise _err(47001) from None
            if not isinstance(payload, dict):
                raise _err(47001)
        route = ROUTES.get(path)
        if route is None:
            return
        route(self, query, payload or {})

    def _caller(self, query: dict, body: bytes) -> str | None:
        """The app a call is for: the appid / corpid it names, else the owner of its access token
        (called with the state lock held)."""
        named = query.get("appid") or query.get("corpid")
        if named:
            return named
        token = query.get("access_token")
        if token:
            return (self.state.tokens.get(token) or (None,))[0]
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return None
        return payload.get("appid") if isinstance(payload, dict) else None

    def _control(self, method: str, what: str, query: dict, body: bytes) -> None:
        st = self.state
        payload = json.loads(body or b"{}") if method == "POST" else {}
        if what.startswith("wecom/") and what[6:] in wecom_guides_sim.CONTROL:
            wecom_guides_sim.control(self, method, what[6:], payload)
        if what in CONTROL:
            CONTROL[what](self, payload)        # raises its Reply; runs without the lock (it may call siyu)
        with st.lock:
            if what == "health":
                raise Reply(200, {"ok": True})
            if what == "sent":
                raise Reply(200, list(st.sent))
            if what == "calls":
                if query.get("app_id"):
                    raise Reply(200, {path: n for (app, path), n in st.calls_by_app.items() if app == query["app_id"]})
                raise Reply(200, dict(st.calls))
            if what == "reset":
                st.reset(int(payload.get("seed", 0)))
                raise Reply(200, {"ok": True})
            if what == "faults":
                if not payload.get("api"):
                    raise Reply(400, {"error": "api is required"})
                st.faults[payload["api"].strip("/")] = payload
                raise Reply(200, {"ok": True})
            if what == "codes":
                code = "code_" + secrets.token_hex(8)
                st.codes[code] = {"openid": payload["openid"], "unionid": payload.get("unionid"),
                                  "app_id": payload.get("app_id"), "used": False}
                raise Reply(200, {"code": code})
            if what == "users":
                owner = payload.get("app_id") or payload.get("corp_id")
                ident = payload.get("openid") or payload.get("external_userid")
                st.users[(owner, ident)] = payload
                raise Reply(200, {"ok": True})
            if what == "apps":
                st.apps[payload["app_id"]] = payload["secret"]
                raise Reply(200, {"ok": True})
            if what == "expire_token":
                token = st.current.pop(payload["app_id"], None)
                st.tokens.pop(token, None)
                raise Reply(200, {"ok": True, "expired": token is not None})
        raise Reply(404, {"error": f"no control endpoint {what}"})

    # -- tokens -------------------------------------------------------------------------------
    def _issue(self, app_id: str, secret: str, *, keep_current: bool) -> Reply:
        st = self.state
        with st.lock:
            known = st.apps.get(app_id)
            if known is not None and known != secret:
                return _err(40125)
            token = st.current.get(app_id)
            if keep_current and token and time.time() - st.tokens[token][1] < TOKEN_TTL:
                issued = st.tokens[token][1]
                return Reply(200, {"access_token": token, "expires_in": int(TOKEN_TTL - (time.time() - issued))})
            if token:
                st.tokens.pop(token, None)       # a new token replaces the old one at once
            token = "tok_" + secrets.token_hex(12)
            st.current[app_id] = token
            st.tokens[token] = (app_id, time.time())
            return Reply(200, {"access_token": token, "expires_in": TOKEN_TTL})

    def _app_of(self, query: dict) -> str:
        token = query.get("access_token")
        if not token:
            raise _err(41001)
        with self.state.lock:
            found = self.state.tokens.get(token)
        if found is None:
            raise _err(40001)
        if time.time() - found[1] >= TOKEN_TTL:
            raise _err(42001)
        return found[0]

    def _record(self, api: str, app_id: str, touser, template_id, data) -> None:
        with self.state.lock:
            self.state.sent.append({"api": api, "app_id": app_id, "touser": touser, "template_id": template_id,
                                    "data": data, "at": datetime.now(timezone.utc).isoformat()})


def _token(sim, q, p):
    raise sim._issue(q.get("appid", ""), q.get("secret", ""), keep_current=False)


def _stable_token(sim, q, p):
    raise sim._issue(p.get("appid", ""), p.get("secret", ""), keep_current=not p.get("force_refresh"))


def _gettoken(sim, q, p):
    reply = sim._issue(q.get("corpid", ""), q.get("corpsecret", ""), keep_current=True)
    if isinstance(reply.payload, dict) and "access_token" in reply.payload:
        reply.payload = {"errcode": 0, "errmsg": "ok", **reply.payload}
    raise reply


def _jscode2session(sim, q, p):
    st = sim.state
    with st.lock:
        code = st.codes.get(q.get("js_code", ""))
        if code is None:
            raise _err(40029)
        if code["used"]:
            raise _err(40163)
        code["used"] = True
    out = {"openid": code["openid"], "session_key": secrets.token_urlsafe(16)}
    if code.get("unionid"):
        out["unionid"] = code["unionid"]
    raise Reply(200, out)


def _user(sim, owner: str, ident: str) -> dict | None:
    with sim.state.lock:
        return sim.state.users.get((owner, ident))


def _user_info(sim, q, p):
    app_id = sim._app_of(q)
    user = _user(sim, app_id, q.get("openid", ""))
    if user is None:
        raise _err(40003)
    out = {"subscribe": 1, "openid": user["openid"], "language": "zh_CN", "subscribe_time": int(time.time())}
    if user.get("unionid"):
        out["unionid"] = user["unionid"]
    raise Reply(200, out)


def _external_contact(sim, q, p):
    corp = sim._app_of(q)
    user = _user(sim, corp, q.get("external_userid", ""))
    if user is None:
        raise _err(40096)
    contact = {"external_userid": user["external_userid"], "name": user.get("name", "customer"), "type": 1}
    if user.get("unionid"):
        contact["unionid"] = user["unionid"]
    raise Reply(200, {"errcode": 0, "errmsg": "ok", "external_contact": contact, "follow_user": []})


def _send(api: str):
    def handler(sim, q, p):
        app_id = sim._app_of(q)
        if api == "cgi-bin/externalcontact/send_welcome_msg":
            code = p.get("welcome_code")
            if not code:
                raise _err(47001)
            with sim.state.lock:
                if code in sim.state.welcome_codes_used:
                    raise _err(41051)
                sim.state.welcome_codes_used.add(code)
            sim._record(api, app_id, code, None, p.get("text"))
            raise Reply(200, {"errcode": 0, "errmsg": "ok"})
        if api == "cgi-bin/externalcontact/add_msg_template":
            users = p.get("external_userid") or []
            if not isinstance(users, list) or not users:
                raise _err(47001)
            sim._record(api, app_id, users, None, p.get("text"))
            raise Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": "msg" + secrets.token_hex(6), "fail_list": []})
        touser = p.get("touser")
        if not touser:
            raise _err(47001)
        template_id = p.get("template_id")
        if api != "cgi-bin/message/custom/send" and not template_id:
            raise _err(40037)
        user = _user(sim, app_id, touser)
        if user is not None and user.get("blocked"):
            raise _err(43101)
        data = p.get("data") if api != "cgi-bin/message/custom/send" else p.get(p.get("msgtype", "text"))
        sim._record(api, app_id, touser, template_id, data)
        out = {"errcode": 0, "errmsg": "ok"}
        if api == "cgi-bin/message/template/send":
            out["msgid"] = secrets.randbelow(10 ** 12)
        raise Reply(200, out)
    return handler


def _qrcode_create(sim, q, p):
    sim._app_of(q)
    scene = (p.get("action_info") or {}).get("scene") or {}
    value = scene.get("scene_str") or scene.get("scene_id")
    if value is None or p.get("action_name") not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE",
                                                      "QR_LIMIT_STR_SCENE"):
        raise _err(47001)
    ticket = "gQ" + secrets.token_urlsafe(12)
    url = f"http://weixin.qq.com/q/{value}"
    with sim.state.lock:
        sim.state.codes[ticket] = {"url": url, "used": False}
    raise Reply(200, {"ticket": ticket, "expire_seconds": int(p.get("expire_seconds") or 0) or None, "url": url})


def _showqrcode(sim, q, p):
    with sim.state.lock:
        entry = sim.state.codes.get(q.get("ticket", ""))
    if entry is None or "url" not in entry:
        raise Reply(404, {"errcode": 404, "errmsg": "unknown ticket"})
    raise Reply(200, _png(entry["url"]), "image/png")


def _wxacode(sim, q, p):
    sim._app_of(q)
    scene = p.get("scene")
    if not isinstance(scene, str) or not scene or len(scene) > 32:
        raise _err(40129)
    raise Reply(200, _png(f"{p.get('page') or 'pages/index/index'}?scene={scene}"), "image/png")


ROUTES = {
    "cgi-bin/token": _token,
    "cgi-bin/stable_token": _stable_token,
    "cgi-bin/gettoken": _gettoken,
    "sns/jscode2session": _jscode2session,
    "cgi-bin/user/info": _user_info,
    "cgi-bin/externalcontact/get": _external_contact,
    "cgi-bin/qrcode/create": _qrcode_create,
    "cgi-bin/showqrcode": _showqrcode,
    "wxa/getwxacodeunlimit": _wxacode,
    **{api: _send(api) for api in SEND_APIS},
}
CONTROL: dict = {}

# Printable codes and the shopper's phone (issue 11 §1): a module of their own, routed from here.
from siyu_dev import wechat_sim_codes  # noqa: E402 - it extends the tables above

ROUTES.update(wechat_sim_codes.ROUTES)
CONTROL.update(wechat_sim_codes.CONTROL)
ERRMSG.update(wechat_sim_codes.ERRMSG)

# guides: WeCom login, corp tags, group messages held until the guide confirms (siyu_dev.wecom_guides_sim)
from siyu_dev import wecom_guides_sim  # noqa: E402 - it reads this module's Reply/_err at call time
ROUTES.update(wecom_guides_sim.ROUTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIYU_WECHAT_PORT", 8900)))
    args = parser.parse_args()
    sim = WeChatSimulator(port=args.port)
    try:
        print(f"WeChat simulator on {sim.start()}", flush=True)
    except PortInUse as err:
        raise SystemExit(str(err)) from None
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    # through the imported module, so the modules that extend it raise the Reply it catches
    from siyu_dev.wechat_sim import main as imported_main
    imported_main()
