"""The HTTP contract: what each route takes and answers, declared once (chalicelib.contract_routes),
enforced on every request body and header it declares, and published as OpenAPI 3.1 at /openapi.json.

One source: `app.body()` checks a request against the declaration of the route it is serving before
any domain parse runs, and `document()` renders the same declarations. The domain parses keep their
business checks (a time in the window, a known template...); the schema states the shape.

The validator is a small subset of JSON Schema 2020-12 (KEYWORDS): siyu's declarations use nothing
else, a unit test refuses a declaration that does (so nothing is published that is not enforced), and
the same test cross-checks it against the `jsonschema` library. Written here rather than imported so
a cold start pays nothing for it: this module imports only the standard library, and the
declarations themselves load on the first request that has a body to check.

Refusals keep siyu's error shape and the codes the domain gave before the schema existed: a field's
problem is `invalid_<field>` (or the field's `x-error-code`), a field the route does not take is
`unknown_field` (only where the domain refused unknown fields), a header's is its `x-error-code`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import BadRequest

# Keywords the validator enforces, and annotations it (like JSON Schema) only publishes.
KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                      "enum", "minimum", "maximum", "minLength", "maxLength", "pattern"})
ANNOTATIONS = frozenset({"description", "title", "examples", "default", "format", "x-error-code", "readOnly"})

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # as JSON Schema counts them: 3 and 3.0 are integers, true is not a number
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


@dataclass(frozen=True)
class Header:
    name: str
    schema: dict
    required: bool = False
    code: str = "invalid_header"
    description: str = ""


@dataclass(frozen=True)
class Op:
    """One route and method: who may call it (`auth`, a name in SECURITY), what it takes, what it answers.

    `responses` maps a success status to its body schema (None: not JSON); every route also answers
    errors in ERROR shape. `errors` maps a status to codes this route gives beyond the common ones
    (for the reference; the response schema is ERROR for all of them)."""
    summary: str
    auth: str | None
    responses: dict
    request: dict | None = None
    query: dict = field(default_factory=dict)          # name -> schema (the domain parses query strings)
    query_required: tuple[str, ...] = ()               # the query parameters the domain refuses to go without
    headers: tuple[Header, ...] = ()
    errors: dict = field(default_factory=dict)
    tag: str = ""
    request_example: dict | None = None
    content_types: tuple[str, ...] = ("application/json",)
    response_type: str | tuple[str, ...] = "application/json"


# ---- validating ---------------------------------------------------------------------------------------

class Problem(Exception):
    def __init__(self, path: tuple, message: str, code: str | None, unknown: bool = False):
        super().__init__(message)
        self.path, self.message, self.code, self.unknown = path, message, code, unknown


def problem(schema: dict, value: object) -> Problem | None:
    """The first way `value` breaks `schema` (None: it conforms)."""
    try:
        _check(schema, value, (), None)
    except Problem as found:
        return found
    return None


def _where(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "body"


def _check(schema: dict, value: object, path: tuple, code: str | None) -> None:
    code = schema.get("x-error-code", code)
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in names):
            raise Problem(path, f"{_where(path)} must be {' or '.join(names)}", code)
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        raise Problem(path, f"{_where(path)} must be one of {', '.join(map(str, schema['enum']))}", code)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            raise Problem(path, f"{_where(path)} must be {schema.get('minLength', 0)}-{schema.get('maxLength', '')}"
                                " characters", code)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise Problem(path, f"{_where(path)} must match {schema['pattern']}", code)
    if _TYPES["number"](value):
        if ("minimum" in schema and value < schema["minimum"]) or ("maximum" in schema and value > schema["maximum"]):
            raise Problem(path, f"{_where(path)} must be from {schema.get('minimum', '')} to"
                                f" {schema.get('maximum', '')}", code)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            raise Problem(path, f"{_where(path)} must hold {schema.get('minItems', 0)}-{schema.get('maxItems', '')}"
                                " items", code)
        if "items" in schema:
            for i, item in enumerate(value):
                _check(schema["items"], item, path + (i,), code)
    if isinstance(value, dict):
        # in the order the domain checks: unknown fields first, then each field in declaration order
        properties, required = schema.get("properties", {}), schema.get("required", ())
        extra = schema.get("additionalProperties", True)
        unknown = sorted(k for k in value if k not in properties)
        if extra is False and unknown:
            raise Problem(path, f"unknown field(s): {', '.join(unknown[:5])}", code or "unknown_field", unknown=True)
        for name in [*properties, *(r for r in required if r not in properties)]:
            inner = properties.get(name, {})
            if name in value:
                _check(inner, value[name], path + (name,), inner.get("x-error-code", code))
            elif name in required:
                raise Problem(path + (name,), f"{_where(path + (name,))} is required",
                              inner.get("x-error-code", code))
        if isinstance(extra, dict):
            for name in unknown:
                _check(extra, value[name], path + (name,), code)


def refusal(found: Problem) -> BadRequest:
    """The 400 a caller gets for `found`: the field's code, else invalid_<top-level field>."""
    code = found.code
    if code is None:
        code = "invalid_" + str(found.path[0]) if found.path else "malformed_json"
    return BadRequest(found.message, code=code)


def check_request(op: Op, headers, body: object) -> None:
    """Refuse (BadRequest) a request that breaks `op`'s declared headers or body; headers first, as
    the services checked an Idempotency-Key before reading the body."""
    for header in op.headers:
        value = (headers or {}).get(header.name.lower())
        if value is None:
            if header.required:
                raise BadRequest(f"send a {header.name} header: {header.description}", code=header.code)
            continue
        if problem(header.schema, value) is not None:
            raise BadRequest(f"the {header.name} header must be {header.description}", code=header.code)
    if op.request is not None:
        found = problem(op.request, body)
        if found is not None:
            raise refusal(found)


# ---- publishing ---------------------------------------------------------------------------------------

ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
}

SECURITY = {
    "platformKey": {"type": "http", "scheme": "bearer",
                    "description": "The platform key (`sk_plat_…`): runs every brand (printed by `make run`)."},
    "brandAdminKey": {"type": "http", "scheme": "bearer",
                      "description": "A brand's admin key (`sk_brand_…`), shown once when the brand is created. "
                                     "The platform key is accepted too."},
    "posKey": {"type": "http", "scheme": "bearer",
               "description": "A store's POS key (`sk_pos_…`), shown once when the store is created; it acts "
                              "for that one store."},
    "shopperSession": {"type": "http", "scheme": "bearer",
                       "description": "A shopper's session token from `POST /mp/{brand_id}/login` (signed for "
                                      "that brand; it expires)."},
    "guideSession": {"type": "http", "scheme": "bearer",
                     "description": "A guide's session token from `POST /guide/{brand_id}/login` (WeCom sign-in)."},
    "wechatSignature": {"type": "apiKey", "in": "query", "name": "signature",
                        "description": "WeChat's callback signature: `signature`/`msg_signature` with "
                                       "`timestamp` and `nonce`, SHA-1 over the brand app's token (and the "
                                       "encrypted message in safe mode)."},
}
# what a caller gets wrong about auth, per scheme
AUTH_ERRORS = {
    "platformKey": {401: ["missing_key", "invalid_key"], 403: ["forbidden"]},
    "brandAdminKey": {401: ["missing_key", "invalid_key"], 403: ["forbidden"]},
    "posKey": {401: ["missing_key", "invalid_key"], 403: ["forbidden"]},
    "shopperSession": {401: ["missing_session", "invalid_session", "session_expired"]},
    "guideSession": {401: ["missing_session", "invalid_session", "session_expired"]},
    "wechatSignature": {},
}
COMMON_ERRORS = {404: ["not_found"], 405: ["method_not_allowed"], 500: ["internal"], 503: ["unavailable"]}


def _field_codes(schema: dict | None) -> list[str]:
    """The codes a body schema's refusals carry (invalid_<field>, x-error-code, unknown_field)."""
    if not schema:
        return []
    codes = ["malformed_json"]
    for name, inner in schema.get("properties", {}).items():
        codes.append(inner.get("x-error-code", "invalid_" + name))
    if schema.get("additionalProperties") is False:
        codes.append("unknown_field")
    return codes


def _clean(schema: Any) -> Any:
    """The schema as published: siyu's `x-error-code` stays (an OpenAPI extension is legal anywhere)."""
    return schema


def _error_response(status: int, codes: list[str]) -> dict:
    codes = list(dict.fromkeys(codes))
    described = "Refused: " + ", ".join(f"`{c}`" for c in codes) if codes else "Refused"
    examples = {c: {"value": {"error": {"code": c, "message": "…"}}} for c in codes[:12]}
    content = {"schema": {"$ref": "#/components/schemas/Error"}}
    if examples:
        content["examples"] = examples
    return {"description": described, "content": {"application/json": content}}


def operation(path: str, method: str, name: str, op: Op) -> dict:
    params = [{"name": p, "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
              for p in re.findall(r"{(\w+)}", path)]
    params += [{"name": n, "in": "query", "required": n in op.query_required, "schema": s}
               for n, s in op.query.items()]
    params += [{"name": h.name, "in": "header", "required": h.required, "description": h.description,
                "schema": h.schema} for h in op.headers]
    out: dict = {"operationId": name, "summary": op.summary, "tags": [op.tag] if op.tag else [],
                 "security": [{op.auth: []}] if op.auth else [], "parameters": params, "responses": {}}
    if op.request is not None:
        media = {"schema": _clean(op.request)}
        if op.request_example is not None:
            media["example"] = op.request_example
        out["requestBody"] = {"required": True, "content": {t: dict(media) for t in op.content_types}}
    elif op.auth == "wechatSignature":
        out["requestBody"] = {"required": False, "content": {t: {"schema": {"type": "string"}}
                                                             for t in op.content_types}}
    for status, schema in op.responses.items():
        types = (op.response_type,) if isinstance(op.response_type, str) else op.response_type
        content = {t: {"schema": schema} for t in types} if schema is not None else {}
        out["responses"][str(status)] = {"description": "OK" if status < 300 else "Answered", "content": content}
    errors: dict[int, list[str]] = {404: ["unknown_brand"]} if "{brand_id}" in path else {}
    for table in (AUTH_ERRORS.get(op.auth or "", {}), COMMON_ERRORS, op.errors):
        for status, codes in table.items():
            errors.setdefault(status, []).extend(codes)
    if op.request is not None or any(h.code for h in op.headers):
        errors.setdefault(400, []).extend([h.code for h in op.headers] + _field_codes(op.request))
    if op.request is not None:
        errors.setdefault(415, []).append("unsupported_media_type")
    for status in sorted(errors):
        if str(status) not in out["responses"]:
            out["responses"][str(status)] = _error_response(status, errors[status])
    # any other 4xx/5xx is still an error in siyu's shape
    out["responses"].setdefault("4XX", _error_response(400, []))
    out["responses"].setdefault("5XX", _error_response(500, []))
    return out


def build(routes: dict, names: dict, *, server: str = "/") -> dict:
    """The OpenAPI 3.1 document of `routes` ({(METHOD, path): Op}); `names` maps the same keys to the
    view's name (its operationId)."""
    paths: dict = {}
    for (method, path), op in sorted(routes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        paths.setdefault(path, {})[method.lower()] = operation(path, method, names.get((method, path), ""), op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "siyu API", "version": "1",
                 "description": "Private-domain retail on WeChat: brands, stores, members, coupons, orders, "
                                "campaigns. Every error is `{\"error\": {\"code\", \"message\"}}` with a 4xx "
                                "status (a 5xx is a bug, or 503 `unavailable` with Retry-After)."},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY, "schemas": {"Error": ERROR}},
    }
