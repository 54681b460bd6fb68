"""Answers chalice gives before any siyu view runs, in siyu's error shape.

Chalice itself refuses a method the route does not have (405) and a Content-Type the route does not
accept (415), with a body `{"Code", "Message"}` of its own. A caller of siyu gets one shape for every
error, `{"error": {"code", "message"}}`, whoever produced it: in Lambda and on the local stack alike.
"""
from __future__ import annotations

from chalice import Response

# chalice's error code -> siyu's
CODES = {"MethodNotAllowedError": "method_not_allowed", "UnsupportedMediaType": "unsupported_media_type",
         "BadRequest": "bad_request", "InternalServerError": "internal"}


def in_siyu_shape(response: Response, request, routes: dict) -> Response:
    """`response` unchanged, unless it is one of chalice's own errors (CODES): then the same status
    and headers (Allow, CORS) with siyu's body. `routes` is the app's route table."""
    body = response.body
    if not (isinstance(body, dict) and set(body) == {"Code", "Message"} and body["Code"] in CODES):
        return response
    code = CODES[body["Code"]]
    headers = {k: v for k, v in (response.headers or {}).items() if k.lower() != "content-type"}
    if code == "method_not_allowed":
        message = f"method not allowed here; allowed: {headers.get('Allow', '')}"
    elif code == "unsupported_media_type":
        route = routes.get((request.context or {}).get("resourcePath"), {}).get(request.method)
        accepted = ", ".join(route.content_types) if route else "application/json"
        message = f"this Content-Type is not accepted here; send {accepted}"
    else:
        message = str(body["Message"])[:200]
    return Response({"error": {"code": code, "message": message}}, status_code=response.status_code,
                    headers=headers)
