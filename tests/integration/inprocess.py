"""The API called in this process, without a socket or a server thread: the event API Gateway would
build (chalice's LocalGateway, as chalice.test.Client uses it) handed to the same app object the local
server serves. For the many-case tests (who may call which route, which inputs are refused); each keeps
one case over HTTP, which proves the transport."""
from __future__ import annotations

import json
import urllib.parse


class Reply:
    """The parts of a requests.Response the tests read."""

    def __init__(self, status_code: int, headers: dict, body: bytes):
        self.status_code, self.headers, self.content = status_code, headers, body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


class InProcessApi:
    def __init__(self):
        from chalice.config import Config

        import app as api_module
        from siyu_dev.local_api import SiyuLocalGateway
        config = Config.create(chalice_stage="local", app_name="siyu", chalice_app=api_module.app,
                               environment_variables={})
        self.gateway = SiyuLocalGateway(api_module.app, config)

    def call(self, method: str, path: str, key: str | None = None, json_body=None, *, data: bytes | None = None,
             headers: dict | None = None, params: dict | None = None) -> Reply:
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        from chalice.local import LocalGatewayException
        try:
            out = self.gateway.handle_request(method=method, path=path, headers=headers, body=body)
        except LocalGatewayException as err:
            return Reply(err.CODE, err.headers, err.body or b"")
        raw = out.get("body") or b""
        if out.get("isBase64Encoded"):
            import base64
            raw = base64.b64decode(raw)
        return Reply(out["statusCode"], {**out["headers"], **out.get("multiValueHeaders", {})},
                     raw if isinstance(raw, bytes) else raw.encode())
