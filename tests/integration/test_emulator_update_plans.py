"""UpdateItem's planned expressions (siyu_dev.update_plans) answer exactly as moto's validator and
executor do: for each expression, on a new item and on existing ones, the same stored item (the same
values shared between attributes, too), the same refusal with the same text and the same partial
item, the same stream records; and on the wire, the same ReturnValues. Each case runs twice on twin
items, once with the plans and once with moto's own classes."""
from __future__ import annotations

import json
import uuid

import pytest

NAMES = {"#a": "a", "#b": "b", "#n": "n", "#m": "m", "#s": "s", "#k": "pk", "#0": "issued", "#1": "kind",
         "#g": "gsi1pk", "#big": "big", "#e": ""}
VALUES = {":v": {"S": "v"}, ":w": {"N": "2"}, ":one": {"N": "1"}, ":minus": {"N": "-1.5"}, ":t": {"S": "t"},
          ":set": {"SS": ["x"]}, ":big": {"S": "x" * 300_000}, ":empty": {"S": ""}, ":bad": {"N": "abc"},
          ":1": {"S": "stock_shard"}, ":2": {"N": "1"}, ":l": {"L": [{"S": "x"}, {"N": "1"}]},
          ":map": {"M": {"k": {"S": "v"}, "n": {"NULL": True}}}, ":ns": {"NS": ["1", "2"]}}
TEXTS = [
    # the forms a plan answers
    "SET #a = :v", "SET #a = :v, #b = :w", "SET #1 = :1 ADD #0 :2", "ADD #n :one", "ADD #n :minus, #m :one",
    "SET #a = if_not_exists(#a, :v)", "SET #a = if_not_exists(#b, :v)", "SET #a = if_not_exists(#b, :v) ADD #b :one",
    "SET #a = if_not_exists(#n, :w) ADD #n :one", "REMOVE #a", "REMOVE #b, #a", "REMOVE #a SET #b = :v ADD #n :one",
    "SET a = :l, b = :map", "REMOVE a, zz", "SET #a = :map, #b = if_not_exists(#a, :l)", "SET #g = :empty",
    "SET #a = :v, #big = :big", "SET #b = :big", "ADD #s :one", "ADD #n :bad", "SET #e = :v",
    # forms moto's path answers (refusals among them)
    "SET size = :v", "SET #a = :v, #a = :w", "SET #a = :v SET #b = :w", "SET #k = :v", "REMOVE #k",
    "SET #a = if_not_exists(#k, :v)", "ADD #n :t", "ADD #n :set", "ADD #a :ns", "SET #a = :missing", "SET #x = :v",
    "SET #a = #b", "SET #n = #n + :one", "SET gsi1pk = :empty", "SET pk = :v", "SET #a = if_not_exists(#x, :v)",
    "ADD a :one, #a :one", "DELETE #a :set", "SET #a = list_append(if_not_exists(#a, :l), :l)",
]
STATES = {
    "new": None,
    "plain": {"a": {"S": "old"}, "b": {"N": "7"}, "n": {"N": "41"}, "s": {"S": "text"}},
    "sets": {"a": {"SS": ["y"]}, "b": {"NS": ["3"]}, "n": {"N": "0.5"}, "m": {"M": {"x": {"S": "y"}}}},
    "near the limit": {"big": {"S": "y" * 200_000}, "n": {"N": "1"}},
}


@pytest.fixture
def table(scratch_table) -> str:
    """Written through moto's backend directly: a scratch table, not the main one (conftest.scratch_table)."""
    return scratch_table


@pytest.fixture
def backend(stack, table):
    from moto.dynamodb.models import dynamodb_backends
    found = [b for account in dynamodb_backends.values() for b in account.values() if table in b.tables]
    assert len(found) == 1
    return found[0]


def _key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


class _MotoWay:
    """moto's own validator and executor in update_item, for the duration of the block."""

    def __enter__(self):
        from moto.dynamodb import models
        from siyu_dev import update_plans
        self.planned = models.UpdateExpressionValidator, models.UpdateExpressionExecutor
        assert self.planned[0] is not update_plans.ORIGINALS["validator"]
        models.UpdateExpressionValidator = update_plans.ORIGINALS["validator"]
        models.UpdateExpressionExecutor = update_plans.ORIGINALS["executor"]

    def __exit__(self, *exc):
        from moto.dynamodb import models
        models.UpdateExpressionValidator, models.UpdateExpressionExecutor = self.planned


def _outcome(backend, table: str, state, text: str) -> tuple:
    """An update applied to a fresh item in `state`: what it answered, what is stored, what was streamed."""
    from moto.core.utils import unix_time
    from siyu_dev.emulator import DYNAMODB_LOCK
    pk = f"PLAN#{uuid.uuid4().hex}"
    with DYNAMODB_LOCK:
        if state is not None:
            backend.put_item(table, {**_key(pk), **state})
        shard = backend.get_table(table).stream_shard
        before = len(shard.items)
        try:
            backend.update_item(table, _key(pk), update_expression=text, expression_attribute_names=NAMES,
                                expression_attribute_values=VALUES)
            answer = ("ok",)
        except Exception as error:  # noqa: BLE001 - the refusal (or moto's crash) is what is compared
            answer = ("refused", type(error).__name__, str(error))
        stored = backend.get_item(table, _key(pk))
        records = [r.to_json()["dynamodb"] for r in shard.items[before:]]
    shared = sorted((x, y) for x in stored.attrs for y in stored.attrs if x < y and stored.attrs[x] is stored.attrs[y]) \
        if stored else []
    # SizeBytes counts the record's time as JSON (a float of varying length): compared without it
    streamed = [(r.get("Keys"), r.get("NewImage"), r.get("OldImage"), r["StreamViewType"],
                 r["SizeBytes"] - len(json.dumps(unix_time(r["ApproximateCreationDateTime"])))) for r in records]
    image = stored.to_json()["Attributes"] if stored else None
    return answer, image, shared, streamed, pk


def _same(fast: tuple, slow: tuple) -> tuple:
    """The two outcomes with each one's own key written the same way (twin items have other keys)."""
    def neutral(outcome):
        text = repr(outcome[:4]).replace(outcome[4], "PK")
        return text
    return neutral(fast), neutral(slow)


def test_planned_updates_answer_as_moto_s_validator_and_executor(backend, table, monkeypatch):
    from siyu_dev import update_plans
    planned = []
    original_apply = update_plans.apply
    monkeypatch.setattr(update_plans, "apply", lambda steps, item: (planned.append(1), original_apply(steps, item)))
    answers = set()
    for text in TEXTS:
        for label, state in STATES.items():
            for _ in range(2):          # the second time with the plan compiled
                fast = _outcome(backend, table, state, text)
                with _MotoWay():
                    slow = _outcome(backend, table, state, text)
                mine, moto = _same(fast, slow)
                assert mine == moto, (text, label)
                answers.add(fast[0][0])
    assert answers == {"ok", "refused"}
    assert len(planned) > 60                     # the plans did answer most of the simple forms


def test_a_claim_s_updates_are_planned(backend, table):
    from moto.dynamodb import models
    from siyu_dev import update_plans
    from siyu_dev.emulator import DYNAMODB_LOCK
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    with DYNAMODB_LOCK:
        tree = UpdateExpressionParser.make("SET #1 = :1 ADD #0 :2")
        stored_table = backend.get_table(table)
        from moto.dynamodb.models.dynamo_type import DynamoType, Item
        item = Item(DynamoType({"S": "k"}), DynamoType({"S": "x"}), {})
        applied = models.UpdateExpressionValidator(tree, NAMES, VALUES, item, stored_table).validate()
    assert type(applied) is update_plans._Applied
    assert [(k, n) for k, n, _v in applied.steps] == [("SET", "kind"), ("ADD", "issued")]


RETURNS = ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"]


def test_return_values_and_conditions_on_the_wire_are_moto_s(ddb, table):
    seen = set()
    for text, condition in [("SET #1 = :1 ADD #0 :2", "attribute_not_exists(#0) OR #0 < :w"),
                            ("SET #a = if_not_exists(#a, :v), #b = :w REMOVE #s", None),
                            ("ADD #n :minus", "#n > :one")]:
        used = {k: v for k, v in NAMES.items() if k in text or (condition and k in condition)}
        values = {k: v for k, v in VALUES.items() if k in text or (condition and k in condition)}
        for returns in RETURNS:
            for state in (None, STATES["plain"]):
                answers = []
                for way in ("plans", "moto"):
                    pk = f"PLAN#{uuid.uuid4().hex}"
                    if state:
                        ddb.put_item(TableName=table, Item={**_key(pk), **state})
                    request = dict(TableName=table, Key=_key(pk), UpdateExpression=text, ExpressionAttributeNames=used,
                                   ExpressionAttributeValues=values, ReturnValues=returns)
                    if condition:
                        request["ConditionExpression"] = condition
                    with (_MotoWay() if way == "moto" else _Nothing()):
                        for _ in range(2):
                            try:
                                got = ddb.update_item(**request).get("Attributes")
                            except ddb.exceptions.ClientError as refused:
                                got = refused.response["Error"]
                            stored = ddb.get_item(TableName=table, Key=_key(pk), ConsistentRead=True).get("Item")
                            answers.append(repr((got, stored)).replace(pk, "PK"))
                assert answers[:2] == answers[2:], (text, returns, state)
                seen.add("Code" in answers[0])
    assert seen == {True, False}              # conditions refused and updates answered both ways


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
