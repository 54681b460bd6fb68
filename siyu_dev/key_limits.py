"""DynamoDB's key-size limits, which moto checks only when it writes an item: a partition key value
over 2,048 bytes or a sort key value over 1,024 bytes is a ValidationException on every request that
names it (GetItem, BatchGetItem, TransactGetItems, Query's key condition and ExclusiveStartKey,
UpdateItem, DeleteItem, transactions), before anything is read or written. Without this, an
oversized id from a caller reads "not found" locally and answers 500 in AWS.

Used by siyu_dev.emulator's WSGI middleware, under its lock (so the table lookup is safe).
"""
from __future__ import annotations

import io
import json
import re

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.limits import HASH_KEY_MAX_LENGTH, RANGE_KEY_MAX_LENGTH

ERROR_TYPE = "com.amazonaws.dynamodb.v20120810#ValidationException"
HASH_MESSAGE = ("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size "
                f"limit of{HASH_KEY_MAX_LENGTH} bytes")          # sic: DynamoDB's message has no space there
RANGE_MESSAGE = ("One or more parameter values were invalid: Aggregated size of all range keys has exceeded "
                 f"the size limit of {RANGE_KEY_MAX_LENGTH} bytes")


def table_named(name: str):
    for account in dynamodb_backends.values():
        for backend in account.values():
            table = backend.tables.get(name) if name else None
            if table is not None:
                return table
    return None


def _size(value: object) -> int:
    # moto's size of a string (S, or B as base64 text) is its UTF-8 length, of a number its text's
    # length: computed here without building a DynamoType (4 keys per claim transaction)
    if type(value) is dict and len(value) == 1:
        (kind, inner), = value.items()
        if type(inner) is str:
            if kind == "N":
                return len(inner)
            if kind in ("S", "B"):
                try:
                    return len(inner.encode("utf-8"))
                except UnicodeEncodeError:      # as DynamoType's size() raises below: no size
                    return 0
    try:
        return DynamoType(value).size() if isinstance(value, dict) else 0
    except Exception:  # noqa: BLE001 - a malformed value is moto's to refuse, with its own message
        return 0


def key_problem(table_name: str, attrs: dict | None, *, index_keys: bool = False) -> str | None:
    """The message DynamoDB gives for `attrs` (a Key, or an Item when index_keys) of that table, or None."""
    table = table_named(table_name)
    if table is None or not isinstance(attrs, dict):
        return None
    hashes = table.hash_key_names if index_keys else [table.hash_key_attr]
    ranges = table.range_key_names if index_keys else [table.range_key_attr] if table.range_key_attr else []
    if any(_size(attrs.get(name)) > HASH_KEY_MAX_LENGTH for name in hashes):
        return HASH_MESSAGE
    if any(_size(attrs.get(name)) > RANGE_KEY_MAX_LENGTH for name in ranges):
        return RANGE_MESSAGE
    return None


def _query_problem(request: dict) -> str | None:
    """A key condition comparing a key to an oversized value (only the partition limit is certain)."""
    values = request.get("ExpressionAttributeValues") or {}
    for placeholder in re.findall(r":[A-Za-z0-9_]+", request.get("KeyConditionExpression") or ""):
        if _size(values.get(placeholder)) > HASH_KEY_MAX_LENGTH:
            return HASH_MESSAGE
    return None


def problem(operation: str, request: dict) -> str | None:
    """Why DynamoDB would refuse this request for its key sizes, or None."""
    table = request.get("TableName")
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        return key_problem(table, request.get("Key"))
    if operation == "PutItem":
        return key_problem(table, request.get("Item"), index_keys=True)
    if operation in ("Query", "Scan"):
        return ((_query_problem(request) if operation == "Query" else None)
                or key_problem(table, request.get("ExclusiveStartKey")))
    if operation == "BatchGetItem":
        for name, spec in (request.get("RequestItems") or {}).items():
            for key in (spec or {}).get("Keys") or []:
                found = key_problem(name, key)
                if found:
                    return found
    if operation == "BatchWriteItem":
        for name, writes in (request.get("RequestItems") or {}).items():
            for write in writes or []:
                found = (key_problem(name, (write.get("PutRequest") or {}).get("Item"), index_keys=True)
                         or key_problem(name, (write.get("DeleteRequest") or {}).get("Key")))
                if found:
                    return found
    if operation in ("TransactWriteItems", "TransactGetItems"):
        for entry in request.get("TransactItems") or []:
            for kind, op in (entry or {}).items():
                op = op or {}
                found = (key_problem(op.get("TableName"), op["Item"], index_keys=True) if kind == "Put"
                         else key_problem(op.get("TableName"), op.get("Key")))
                if found:
                    return found
    return None


def check_request(environ) -> object | None:
    """A WSGI app answering DynamoDB's ValidationException, or None to let the request through.
    Reads the body and puts it back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        return None
    message = problem(environ["HTTP_X_AMZ_TARGET"].split(".", 1)[1], request) if isinstance(request, dict) else None
    if message is None:
        return None
    body = json.dumps({"__type": ERROR_TYPE, "message": message}).encode()

    def refuse(_environ, start_response):
        start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    return refuse
