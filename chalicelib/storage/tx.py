"""The unit of work: one DynamoDB TransactWriteItems whose refused conditions map back to domain outcomes.

Each item is added with a label. `commit(refusals)` raises the exception mapped to the first label
whose condition failed, so a ConditionalCheckFailed surfaces as `already_redeemed` or
`brand_exists`, never as a 500; `attempt()` returns the refused labels instead, for callers that
settle a partly refused batch themselves (the campaign ledger). `retrying(build)` rebuilds and
commits again while DynamoDB reports a conflict with a concurrent transaction.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Mapping

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.storage.models import Item

CONFLICT_RETRIES = 6


def refused(err: Exception) -> bool:
    """A single-item write whose condition did not hold: PynamoDB's errors carry DynamoDB's code as
    `cause_response_code`, a plain botocore ClientError in its response."""
    code = getattr(err, "cause_response_code", None)
    if code is None:
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


class Conflicted(Exception):
    """DynamoDB cancelled the transaction because another one held an item; retrying may pass."""


class Tx:
    def __init__(self) -> None:
        self._tx = TransactWrite(connection=Item._get_connection().connection)
        # PynamoDB sends checks, then deletes, puts and updates, whatever order they were added in;
        # cancellation reasons come back in that wire order, so labels are kept per kind.
        self._labels: dict[str, list[str]] = {"check": [], "delete": [], "put": [], "update": []}

    def __len__(self) -> int:
        return sum(len(v) for v in self._labels.values())

    def check(self, label: str, model_cls, pk: str, sk: str, condition) -> None:
        self._tx.condition_check(model_cls, pk, sk, condition=condition)
        self._labels["check"].append(label)

    def save(self, label: str, model: Item, condition=None) -> None:
        self._tx.save(model, condition=condition)
        self._labels["put"].append(label)

    def update(self, label: str, model: Item, actions: list, condition=None) -> None:
        self._tx.update(model, actions, condition=condition)
        self._labels["update"].append(label)

    def delete(self, label: str, model: Item, condition=None) -> None:
        self._tx.delete(model, condition=condition)
        self._labels["delete"].append(label)

    def raw_items(self) -> list[dict]:
        """The items as TransactItems entries, for a caller that writes its transaction through the
        client (storage.ledger's close), in the order PynamoDB would send them."""
        t = self._tx
        return ([{"ConditionCheck": i} for i in t._condition_check_items] + [{"Delete": i} for i in t._delete_items]
                + [{"Put": i} for i in t._put_items] + [{"Update": i} for i in t._update_items])

    def attempt(self) -> set[str]:
        """Commit; return the labels whose condition failed (empty: committed, or nothing to write).
        Raises Conflicted when a concurrent transaction held an item, anything else as it came."""
        if not len(self):
            return set()
        try:
            with self._tx:      # TransactWrite commits when its block exits cleanly
                pass
            return set()
        except TransactWriteError as err:
            order = self._labels["check"] + self._labels["delete"] + self._labels["put"] + self._labels["update"]
            reasons = err.cancellation_reasons or []
            failed = {order[i] for i, reason in enumerate(reasons)
                      if reason is not None and reason.code == "ConditionalCheckFailed" and i < len(order)}
            if failed:
                return failed
            if any(reason is not None and reason.code == "TransactionConflict" for reason in reasons):
                raise Conflicted() from None
            raise

    def commit(self, refusals: Mapping[str, Exception] | None = None) -> None:
        """Commit; when refused, raise the first of `refusals` whose label failed its condition."""
        failed = self.attempt()
        if not failed:
            return
        for label, refusal in (refusals or {}).items():
            if label in failed:
                raise refusal
        raise RuntimeError(f"transaction refused on {sorted(failed)} with no refusal mapped")


def retrying(build: Callable[[], Tx]) -> set[str]:
    """`build().attempt()`, built and tried again with jittered backoff while DynamoDB reports a
    conflict with another transaction (hot tallies, the same chunk in two containers)."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return build().attempt()
        except Conflicted:
            time.sleep(random.uniform(0, 0.02 * 2 ** attempt))
    return build().attempt()
