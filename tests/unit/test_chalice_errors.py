"""What chalice answers before a view runs (wrong method, wrong Content-Type) leaves the function in
siyu's error shape, as Lambda would return it to API Gateway."""
from __future__ import annotations

import json

import pytest


def proxy_event(method: str, resource: str, path: str, headers: dict, body: str | None = None) -> dict:
    """An API Gateway REST proxy event, as the deployed API hands it to the function."""
    return {"resource": resource, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": {"brand_id": "b1"}, "stageVariables": None,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": "r1", "path": path,
                               "stage": "api"},
            "body": body, "isBase64Encoded": False}


@pytest.fixture(scope="module")
def lambda_app():
    from app import app
    return app


class Context:
    aws_request_id, function_name, memory_limit_in_mb = "r1", "api", 512
    invoked_function_arn = "arn:aws-cn:lambda:cn-north-1:000000000000:function:api"

    def get_remaining_time_in_millis(self):
        return 30_000


def test_a_method_the_route_lacks_is_405_method_not_allowed(lambda_app):
    out = lambda_app(proxy_event("DELETE", "/admin/{brand_id}/stores", "/admin/b1/stores",
                                 {"Authorization": "Bearer sk_secret_x"}), Context())
    assert out["statusCode"] == 405
    body = json.loads(out["body"])
    assert body["error"]["code"] == "method_not_allowed" and set(body) == {"error"}
    assert "GET" in body["error"]["message"] and "POST" in body["error"]["message"]
    assert "sk_secret_x" not in out["body"]


def test_a_content_type_the_route_does_not_accept_is_415_unsupported_media_type(lambda_app):
    out = lambda_app(proxy_event("POST", "/admin/{brand_id}/stores", "/admin/b1/stores",
                                 {"Content-Type": "text/csv", "Authorization": "Bearer sk_secret_x"}, "a,b"),
                     Context())
    assert out["statusCode"] == 415
    body = json.loads(out["body"])
    assert body["error"] == {"code": "unsupported_media_type",
                             "message": "this Content-Type is not accepted here; send application/json"}


def test_a_wechat_callback_route_names_the_content_types_it_accepts(lambda_app):
    out = lambda_app(proxy_event("POST", "/wechat/{brand_id}/oa", "/wechat/b1/oa", {"Content-Type": "image/png"},
                                 "x"), Context())
    assert out["statusCode"] == 415
    assert "text/xml" in json.loads(out["body"])["error"]["message"]


def test_other_responses_pass_unchanged():
    from chalice import Response

    from chalicelib.chalice_errors import in_siyu_shape
    ours = Response({"error": {"code": "not_found", "message": "x"}}, status_code=404)
    assert in_siyu_shape(ours, None, {}) is ours
    look_alike = Response({"Code": "Something", "Message": "a view's own body"}, status_code=200)
    assert in_siyu_shape(look_alike, None, {}) is look_alike
