"""The unit of work: one DynamoDB TransactWriteItems whose refused conditions map back to domain outcomes.

Each item is added with a label; when the transaction is cancelled, the labels of the items whose
condition failed pick the exception to raise (in the order `refusals` lists them), so a
ConditionalCheckFailed surfaces as `already_redeemed` or `brand_exists`, never as a 500.
"""
from __future__ import annotations

from typing import Mapping

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.storage.models import Item


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

    def commit(self, refusals: Mapping[str, Exception] | None = None) -> None:
        """Commit; on cancellation raise the first of `refusals` whose label failed its condition."""
        try:
            with self._tx:      # TransactWrite commits when its block exits cleanly
                pass
        except TransactWriteError as err:
            order = self._labels["check"] + self._labels["delete"] + self._labels["put"] + self._labels["update"]
            failed = {order[i] for i, reason in enumerate(err.cancellation_reasons or [])
                      if reason is not None and reason.code == "ConditionalCheckFailed" and i < len(order)}
            for label, refusal in (refusals or {}).items():
                if label in failed:
                    raise refusal from None
            raise
