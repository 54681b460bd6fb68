"""The AWS emulator: moto's server, with DynamoDB requests applied one at a time.

moto handles requests on parallel threads without a lock, so two concurrent conditional writes can
both see "not exists" and both succeed, and a cancelled transaction restores a snapshot of the whole
table, erasing writes other threads made meanwhile. Real DynamoDB serializes writes per item; here
every DynamoDB request is serialized, which is stricter but keeps the emulator honest about the
races siyu's tests exercise (concurrent first scans, flash-sale claims, tills racing).

moto's TransactWriteItems also deep-copies every table it touches (stream history included) before
each transaction, to roll back on failure: a cost that grows with everything ever written, so a
campaign to a few hundred members took minutes. Since requests are serialized here, the emulator
applies transactions itself: every condition is checked against the state before the transaction
(as DynamoDB does), then the writes are applied with an undo log of just the items they touch.
Likewise a Query: moto sorts the whole table for every one; here it sees only the queried partition
(or, on an index, the items carrying the queried index key) — the same answer, at DynamoDB's cost
profile rather than a table scan's.
"""
from __future__ import annotations

import copy
import functools
import json
import socket
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (MultipleTransactionsException, TooManyTransactionsException,
                                      TransactionCanceledException, TransactWriteSingleOpException)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from siyu_dev import (item_checks, item_copies, key_limits, key_lookups, moto_speedups, stream_sizes,
                      update_plans)
from siyu_dev.dynamodb_direct import DirectDynamoDB
from siyu_dev.keepalive import KeepAliveServer
from siyu_dev.listen import listen


# Held while a DynamoDB request is applied (SerializedDynamoDB), and by item_count.
DYNAMODB_LOCK = threading.Lock()


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (they are told apart by their X-Amz-Target)."""

    def __init__(self, app):
        self.app = app
        self.lock = DYNAMODB_LOCK

    def __call__(self, environ, start_response):
        # DynamoDB_20120810.* and DynamoDBStreams_20120810.*: a stream read must not see a transaction
        # half-applied (moto applies its items one by one and rolls back by restoring a snapshot).
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB"):
            with self.lock:
                if target.startswith("DynamoDB_20120810."):
                    refused = key_limits.check_request(environ)
                    if refused is not None:
                        return refused(environ, start_response)
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict]) -> None:
    """TransactWriteItems with DynamoDB's semantics (all or nothing; conditions read the state before
    the transaction; one operation per item) at the cost of the items it touches. Relies on the
    caller serializing DynamoDB requests (SerializedDynamoDB)."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops, seen = [], set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        kind, op = next(iter(entry.items()))
        if kind not in ("ConditionCheck", "Put", "Delete", "Update"):
            raise ValueError(f"unsupported transaction operation {kind}")
        table = backend.get_table(op["TableName"])
        if kind == "Put":
            key = {a: op["Item"][a] for a in (table.hash_key_attr, table.range_key_attr) if a}
        else:
            key = op["Key"]
        ident = (table.name, json.dumps(key, sort_keys=True))
        if ident in seen:
            raise MultipleTransactionsException()
        seen.add(ident)
        ops.append((kind, op, table, key))

    reasons, failed = [], False
    for kind, op, table, key in ops:
        current = backend.get_item(table.name, key)
        condition = op.get("ConditionExpression")
        if condition and not get_filter_expression(condition, op.get("ExpressionAttributeNames"),
                                                   op.get("ExpressionAttributeValues")).expr(current):
            old = (current.to_json()["Attributes"]
                   if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None)
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
            failed = True
        else:
            reasons.append((None, None, None))
    if failed:
        raise TransactionCanceledException(reasons)

    undo = []
    streams = {t.name: (t, len(t.stream_shard.items)) for _k, _o, t, _key in ops if t.stream_shard is not None}
    try:
        for kind, op, table, key in ops:
            if kind == "ConditionCheck":
                continue
            hash_key, range_key = backend.get_keys_value(table, key)
            undo.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if kind == "Put":
                backend.put_item(table.name, op["Item"], expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif kind == "Delete":
                backend.delete_item(table.name, key)
            else:
                backend.update_item(table.name, key, update_expression=op["UpdateExpression"],
                                    expression_attribute_names=names, expression_attribute_values=values)
    except Exception:
        for table, hash_key, range_key, before in reversed(undo):
            _restore(table, hash_key, range_key, before)
        for table, length in streams.values():
            del table.stream_shard.items[length:]       # nothing announced that did not happen
        raise


def _restore(table, hash_key, range_key, before) -> None:
    if range_key is None:
        if before is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = before
    elif before is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = before


def item_count(table_name: str) -> int:
    """How many items `table_name` holds, read from the emulator's memory between two requests. Tests
    compare it before and after a refused request; a COUNT Scan over the API would serialize every
    item the session ever wrote (25 s for 20,000 items), holding the lock all that time."""
    from moto.dynamodb.models import dynamodb_backends
    with DYNAMODB_LOCK:
        tables = [backend.tables[table_name] for account in list(dynamodb_backends.values())
                  for backend in list(account.values()) if table_name in backend.tables]
        if len(tables) != 1:
            raise LookupError(f"{len(tables)} tables named {table_name} in the emulator")
        table = tables[0]
        if table.range_key_attr:
            return sum(len(partition) for partition in table.items.values())
        return len(table.items)


_table_query = Table.query


def query(table: Table, hash_key, *args, **kwargs):
    """moto's Query, over the candidates DynamoDB itself would read instead of the whole sorted table
    (moto sorts what it keeps anyway). Relies on requests being serialized: `all_items` is narrowed
    on the table for the duration of the call."""
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    partitions = table.items.values() if table.range_key_attr else [{None: p} for p in table.items.values()]
    if index_name is None:
        found = table.items.get(hash_key)
        candidates = [] if found is None else list(found.values()) if table.range_key_attr else [found]
    else:
        wanted = kwargs.get("hash_key_conditions") or []
        candidates = [item for partition in partitions for item in partition.values()
                      if all(name in item.attrs and item.attrs[name] == value for name, value in wanted)]
    table.all_items = lambda: candidates
    try:
        return _table_query(table, hash_key, *args, **kwargs)
    finally:
        del table.all_items


_parse_update_expression = UpdateExpressionParser.make


@functools.lru_cache(maxsize=4096)
def _parsed_update_expression(expression: str):
    return moto_speedups.remember_text(_parse_update_expression(expression), expression)


def parse_update_expression(_cls, expression: str):
    """moto parses an UpdateExpression twice per update (request validation, then the update) and
    every one again: a sixth of a transaction's time on the emulator. The tree depends on the text
    alone and moto only reads it (its validator works on a deep copy), so each text is parsed once.
    A text that does not parse raises every time (lru_cache keeps no exception)."""
    return _parsed_update_expression(expression)


class EmulatorServer(ThreadedMotoServer):
    def start(self, listening: socket.socket | None = None) -> None:
        """Serve on `listening` (a bound socket from siyu_dev.listen) or bind now. Binding here, in the
        caller, rather than in moto's server thread: there a taken port only ends the thread, and
        start() waits forever for a server that never comes up."""
        DynamoDBBackend.transact_write_items = transact_write_items
        Table.query = query
        UpdateExpressionParser.make = classmethod(parse_update_expression)
        moto_speedups.install()
        update_plans.install()
        item_copies.install()
        stream_sizes.install()
        key_lookups.install()
        item_checks.install()
        if listening is None:
            listening = listen(self._ip_address, self._port, "SIYU_AWS_PORT")
        # DynamoDB's requests skip Flask (siyu_dev.dynamodb_direct: moto's handler, the same answers)
        app = SerializedDynamoDB(DirectDynamoDB(DomainDispatcherApplication(create_backend_app)))
        try:
            # werkzeug serves a duplicate of the descriptor, listening with the backlog we gave it
            self._server = KeepAliveServer(self._ip_address, self._port, app, fd=listening.fileno())
        finally:
            listening.close()
        self._server_ready_event.set()
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        super().stop()                          # accepts no more connections
        if self._server is not None:
            self._server.close_connections()    # else a client's idle keep-alive connection keeps its thread
            self._server.server_close()     # free the port for the next run
