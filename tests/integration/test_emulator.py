"""The local emulator's own DynamoDB transaction and query paths answer as DynamoDB does."""
from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def ddb(stack):
    from chalicelib import aws
    return aws.client("dynamodb")


@pytest.fixture
def table(stack) -> str:
    return stack.env["SIYU_TABLE"]


def put(table: str, pk: str, sk: str, condition: str | None = None, **attrs) -> dict:
    op = {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attrs.items()}}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def stream_length(ddb, table: str) -> int:
    from chalicelib import aws
    streams = aws.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    total, it = 0, iterator["ShardIterator"]
    while it:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        total += len(page["Records"])
        if not page["Records"]:
            return total
        it = page.get("NextShardIterator")
    return total


def test_a_cancelled_transaction_writes_nothing_and_announces_nothing(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "taken"}, "v": {"S": "before"}})
    before = stream_length(ddb, table)
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as refused:
        ddb.transact_write_items(TransactItems=[
            put(table, pk, "new", v="x"),
            {"Update": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "taken"}},
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"S": "after"}}}},
            put(table, pk, "missing", "attribute_exists(pk)", v="again"),
        ])
    reasons = [r["Code"] for r in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]
    assert [(i["sk"]["S"], i["v"]["S"]) for i in items] == [("taken", "before")]
    assert stream_length(ddb, table) == before


def test_conditions_read_the_state_before_the_transaction_and_a_committed_one_applies_every_write(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "a"}},
                            "ConditionExpression": "attribute_not_exists(pk)"}},
        put(table, pk, "b", v="1"), put(table, pk, "c", v="2"),
    ])
    with pytest.raises(ddb.exceptions.ClientError):             # one operation per item
        ddb.transact_write_items(TransactItems=[put(table, pk, "d", v="1"), put(table, pk, "d", v="2")])
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]
    assert [i["sk"]["S"] for i in items] == ["b", "c"]


def test_queries_page_through_one_partition_and_an_index_key_in_order(ddb, table):
    pk, other = f"EMU#{uuid.uuid4().hex}", f"EMU#{uuid.uuid4().hex}"
    gsi = f"G#{uuid.uuid4().hex}"
    for i in range(7):
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": f"{i:02d}"},
                                            "gsi1pk": {"S": gsi}, "gsi1sk": {"S": f"{9 - i:02d}"}})
        ddb.put_item(TableName=table, Item={"pk": {"S": other}, "sk": {"S": f"{i:02d}"}})
    seen, start = [], None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk >= :s", Limit=3,
                         ExpressionAttributeValues={":p": {"S": pk}, ":s": {"S": "02"}}, **kwargs)
        seen += [i["sk"]["S"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == ["02", "03", "04", "05", "06"]
    by_index = ddb.query(TableName=table, IndexName="gsi1", KeyConditionExpression="gsi1pk = :g AND gsi1sk < :s",
                         ExpressionAttributeValues={":g": {"S": gsi}, ":s": {"S": "05"}})["Items"]
    assert [i["gsi1sk"]["S"] for i in by_index] == ["03", "04"]


def test_a_write_failing_mid_transaction_is_undone_with_the_writes_before_it(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "text"}, "v": {"S": "not a number"}})
    before = stream_length(ddb, table)
    with pytest.raises(ddb.exceptions.ClientError):
        ddb.transact_write_items(TransactItems=[
            put(table, pk, "new", v="x"),
            {"Update": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "text"}},
                        "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ])
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]
    assert [(i["sk"]["S"], i["v"]["S"]) for i in items] == [("text", "not a number")]
    assert stream_length(ddb, table) == before
