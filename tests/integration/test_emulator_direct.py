"""A DynamoDB request handed straight to moto's handler (siyu_dev.dynamodb_direct) answers byte for byte
as moto's Flask app does: the same status, headers (all but the request id and the date) and body,
for reads, writes, refusals, malformed requests and an unknown action; and requests it does not take
(another path, an Origin header, another service) still reach moto's Flask app."""
from __future__ import annotations

import json
import uuid

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from siyu_dev.dynamodb_direct import DirectDynamoDB
from siyu_dev.emulator import DYNAMODB_LOCK

VARYING = {"x-amzn-requestid", "date", "x-amz-id-2", "x-amz-request-id"}


@pytest.fixture
def paths(stack, ddb):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    dispatcher = DomainDispatcherApplication(create_backend_app)
    auth = (f"AWS4-HMAC-SHA256 Credential=local/20250101/{ddb.meta.region_name}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0")

    def call(app, target, body, path="/", headers=None, raw=None):
        environ = EnvironBuilder(path=path, method="POST", data=raw if raw is not None else json.dumps(body),
                                 headers={"Content-Type": "application/x-amz-json-1.0", "Authorization": auth,
                                          "X-Amz-Target": target, **(headers or {})}).get_environ()
        with DYNAMODB_LOCK:
            try:
                app_iter, status, response_headers = run_wsgi_app(app, environ)
            except Exception as error:  # noqa: BLE001 - moto's own crash: the server answers 500 either way
                return "raised", type(error).__name__, str(error)
            content = b"".join(app_iter)
        kept = sorted((k.lower(), v) for k, v in response_headers.items() if k.lower() not in VARYING)
        return status, kept, content

    return dispatcher, DirectDynamoDB(dispatcher), call


def both(paths, target, body, **kw):
    flask_app, direct, call = paths
    return call(flask_app, target, body, **kw), call(direct, target, body, **kw)


def key(pk):
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def test_direct_answers_are_moto_flask_answers(paths, table):
    pk = f"DIRECT#{uuid.uuid4().hex}"
    _flask, direct, call = paths
    call(direct, "DynamoDB_20120810.PutItem", {"TableName": table, "Item": {**key(pk), "n": {"N": "1"},
                                                                            "b": {"B": "AAE="}}})
    same = [
        ("GetItem", {"TableName": table, "Key": key(pk), "ConsistentRead": True}),
        ("GetItem", {"TableName": table, "Key": key(pk + "missing")}),
        ("DescribeTable", {"TableName": table}),
        ("Query", {"TableName": table, "KeyConditionExpression": "pk = :p",
                   "ExpressionAttributeValues": {":p": {"S": pk}}}),
        ("BatchGetItem", {"RequestItems": {table: {"Keys": [key(pk), key(pk + "x")]}}}),
        ("PutItem", {"TableName": table, "Item": key(pk), "ConditionExpression": "attribute_not_exists(pk)"}),
        ("PutItem", {"TableName": table, "Item": key(pk), "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                     "ConditionExpression": "attribute_not_exists(pk)"}),
        ("UpdateItem", {"TableName": table, "Key": key(pk), "UpdateExpression": "SET #a = :v, #a = :v",
                        "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": {"S": "1"}}}),
        ("UpdateItem", {"TableName": table, "Key": key(pk), "UpdateExpression": "SET pk = :v",
                        "ExpressionAttributeValues": {":v": {"S": "1"}}}),
        ("GetItem", {"TableName": "no-such-table", "Key": key(pk)}),
        ("GetItem", {"TableName": table}),                  # moto raises KeyError: the same on both
        ("NoSuchAction", {"TableName": table}),
    ]
    for action, body in same:
        flask_answer, direct_answer = both(paths, f"DynamoDB_20120810.{action}", body)
        assert direct_answer == flask_answer, action
        assert direct_answer[0] != "" and direct_answer[2] is not None
    statuses = {action: both(paths, f"DynamoDB_20120810.{action}", body)[1][0] for action, body in same[5:10]}
    assert all(s.startswith("400") for s in statuses.values()), statuses       # the refusals were refusals
    flask_answer, direct_answer = both(paths, "DynamoDB_20120810.GetItem", None, raw=b"{not json")
    assert direct_answer == flask_answer
    # a write: the same update on two fresh items answers the same, and both items hold its result
    answers = []
    for path_app in paths[:2]:
        fresh = f"DIRECT#{uuid.uuid4().hex}"
        answers.append(call(path_app, "DynamoDB_20120810.UpdateItem", {
            "TableName": table, "Key": key(fresh), "UpdateExpression": "ADD #n :one SET #s = :s",
            "ExpressionAttributeNames": {"#n": "n", "#s": "s"}, "ReturnValues": "ALL_NEW",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"SS": ["a", "b"]}}}))
        stored = json.loads(call(direct, "DynamoDB_20120810.GetItem",
                                 {"TableName": table, "Key": key(fresh), "ConsistentRead": True})[2])
        assert stored["Item"]["n"] == {"N": "1"} and sorted(stored["Item"]["s"]["SS"]) == ["a", "b"]
    unkeyed = [(status, [h for h in headers if h[0] != "x-amz-crc32"]) for status, headers, _ in answers]
    assert unkeyed[0] == unkeyed[1]        # (the crc32 is of a body that names another key)
    assert json.loads(answers[0][2])["Attributes"]["n"] == json.loads(answers[1][2])["Attributes"]["n"] == {"N": "1"}


def test_requests_it_does_not_take_reach_moto_flask_app(paths, table):
    pk = f"DIRECT#{uuid.uuid4().hex}"
    for kw in ({"headers": {"Origin": "http://example.com"}}, {"path": "/other"}):
        flask_answer, direct_answer = both(paths, "DynamoDB_20120810.GetItem", {"TableName": table, "Key": key(pk)},
                                           **kw)
        assert direct_answer == flask_answer
    with_origin = both(paths, "DynamoDB_20120810.GetItem", {"TableName": table, "Key": key(pk)},
                       headers={"Origin": "http://example.com"})[1]
    assert ("access-control-allow-origin", "http://example.com") in with_origin[1]
    plain = both(paths, "DynamoDB_20120810.GetItem", {"TableName": table, "Key": key(pk)})[1]
    assert ("access-control-allow-origin", "*") in plain[1]            # flask-cors's header, added here too
