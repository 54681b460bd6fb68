"""The local emulator refuses what DynamoDB refuses: keys over 2,048 bytes (partition) or 1,024 bytes
(sort), on every operation that names a key, with DynamoDB's ValidationException; so every test
that reaches the emulator with an oversized id sees the 500 it would cause in AWS."""
from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

BIG_PK = "p" * 2049
BIG_SK = "s" * 1025
# UTF-8 bytes count, not characters: 683 x 3 bytes = 2,049 bytes
WIDE_PK = "码" * 683


def key(pk: str, sk: str = "x") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    assert err.value.response["Error"]["Code"] == "ValidationException", err.value.response
    return err.value.response["Error"]["Message"]


OPERATIONS = {
    "GetItem": lambda ddb, t, k: ddb.get_item(TableName=t, Key=k),
    "PutItem": lambda ddb, t, k: ddb.put_item(TableName=t, Item=k),
    "UpdateItem": lambda ddb, t, k: ddb.update_item(TableName=t, Key=k, UpdateExpression="SET v = :v",
                                                    ExpressionAttributeValues={":v": {"S": "x"}}),
    "DeleteItem": lambda ddb, t, k: ddb.delete_item(TableName=t, Key=k),
    "BatchGetItem": lambda ddb, t, k: ddb.batch_get_item(RequestItems={t: {"Keys": [key("ok"), k]}}),
    "BatchWriteItem": lambda ddb, t, k: ddb.batch_write_item(RequestItems={t: [{"PutRequest": {"Item": k}}]}),
    "TransactWriteItems": lambda ddb, t, k: ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": t, "Item": key(f"ok-{uuid.uuid4().hex}")}},
        {"Update": {"TableName": t, "Key": k, "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "x"}}}}]),
    "TransactGetItems": lambda ddb, t, k: ddb.transact_get_items(TransactItems=[{"Get": {"TableName": t, "Key": k}}]),
    "Query ExclusiveStartKey": lambda ddb, t, k: ddb.query(
        TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "ok"}},
        ExclusiveStartKey=k),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("which, k", [("partition key", key(BIG_PK)), ("partition key in UTF-8 bytes", key(WIDE_PK)),
                                      ("sort key", key("ok", BIG_SK))])
def test_oversized_keys_are_a_validation_exception(ddb, table, operation, which, k):
    message = refused(OPERATIONS[operation], ddb, table, k)
    assert ("hashkey" if which.startswith("partition") else "range keys") in message


def test_a_query_for_an_oversized_partition_is_a_validation_exception(ddb, table):
    refused(ddb.query, TableName=table, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": BIG_PK}})


def test_an_oversized_index_key_is_refused_on_write(ddb, table):
    item = {**key(f"ok-{uuid.uuid4().hex}"), "gsi1pk": {"S": BIG_PK}, "gsi1sk": {"S": "x"}}
    refused(ddb.put_item, TableName=table, Item=item)


def test_an_item_over_400_kb_is_refused(ddb, table):
    item = {**key(f"ok-{uuid.uuid4().hex}"), "blob": {"S": "b" * 410_000}}
    assert "size" in refused(ddb.put_item, TableName=table, Item=item)


def test_keys_at_the_limits_are_accepted(ddb, table):
    pk, sk = "p" * 2048, "s" * 1024
    ddb.put_item(TableName=table, Item=key(pk, sk))
    assert ddb.get_item(TableName=table, Key=key(pk, sk), ConsistentRead=True)["Item"]["pk"]["S"] == pk
    ddb.delete_item(TableName=table, Key=key(pk, sk))
