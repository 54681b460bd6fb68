"""The local emulator's own DynamoDB transaction and query paths answer as DynamoDB does."""
from __future__ import annotations

import uuid

import pytest


def put(table: str, pk: str, sk: str, condition: str | None = None, **attrs) -> dict:
    op = {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attrs.items()}}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def stream_mark(ddb, table: str) -> str:
    """An iterator just past the stream's newest record (LATEST): what is announced from now on.
    Reading from TRIM_HORIZON instead would page through every record the session ever wrote, under
    the emulator's DynamoDB lock, stalling every other request meanwhile."""
    from chalicelib import aws
    streams = aws.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]


def announced(mark: str, pk: str) -> list[tuple[str, str]]:
    """(eventName, sk) of every stream record for partition `pk` since `mark` (other writers, such as
    the pump's workers, may write meanwhile: only this test's partition counts)."""
    from chalicelib import aws
    streams = aws.client("dynamodbstreams")
    found, it = [], mark
    while it:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        found += [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in page["Records"]
                  if r["dynamodb"]["Keys"]["pk"]["S"] == pk]
        if not page["Records"]:
            return found
        it = page.get("NextShardIterator")
    return found


def test_a_cancelled_transaction_writes_nothing_and_announces_nothing(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "taken"}, "v": {"S": "before"}})
    mark = stream_mark(ddb, table)
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
    assert announced(mark, pk) == []
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "later"}})
    assert announced(mark, pk) == [("INSERT", "later")]     # the stream goes on where the transaction left it


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
    mark = stream_mark(ddb, table)
    with pytest.raises(ddb.exceptions.ClientError):
        ddb.transact_write_items(TransactItems=[
            put(table, pk, "new", v="x"),
            {"Update": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "text"}},
                        "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ])
    items = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]
    assert [(i["sk"]["S"], i["v"]["S"]) for i in items] == [("text", "not a number")]
    assert announced(mark, pk) == []
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "later"}})
    assert announced(mark, pk) == [("INSERT", "later")]


def test_item_count_is_what_a_scan_counts(ddb, stack):
    """tests' table_items() counts in the emulator's memory instead of a Scan: the same number. (A small
    table of its own, left behind: siyu's trimmed DynamoDB model has no DeleteTable.)"""
    from siyu_dev.emulator import item_count
    name = f"emu-count-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    for i in range(30):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"p{i % 4}"}, "sk": {"S": f"s{i}"}})
    ddb.delete_item(TableName=name, Key={"pk": {"S": "p0"}, "sk": {"S": "s0"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "p1"}, "sk": {"S": "s1"}, "v": {"S": "overwritten"}})
    assert item_count(name) == ddb.scan(TableName=name, Select="COUNT")["Count"] == 29
