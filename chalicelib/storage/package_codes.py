"""Package codes: the batch (with its minting checkpoint), one item per code in a partition of its
own (scans of different codes never share a hot key), and the spend written by the first scan."""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib.storage.models import Item, PackageBatch, PackageCode, PackageSpend
from chalicelib.storage.tx import refused


class Exists(Exception):
    pass


def batch_key(brand_id: str, batch_id: str) -> tuple[str, str]:
    return f"B#{brand_id}", f"PKBATCH#{batch_id}"


def code_pk(brand_id: str, code: str) -> str:
    return f"B#{brand_id}#PKC#{code}"


def create_batch(batch: PackageBatch) -> None:
    try:
        batch.save(condition=PackageBatch.pk.does_not_exist())
    except PutError as err:
        if refused(err):
            raise Exists() from None
        raise


def get_batch(brand_id: str, batch_id: str) -> PackageBatch | None:
    try:
        return PackageBatch.get(*batch_key(brand_id, batch_id), consistent_read=True)
    except DoesNotExist:
        return None


def write_codes(brand_id: str, batch: PackageBatch, codes: list[tuple[int, str]]) -> None:
    """Put one page of codes (BatchWriteItem, unprocessed items retried by PynamoDB). Unconditional:
    a page written again holds the same codes, and a spend lives in an item of its own."""
    with PackageCode.batch_write() as writer:
        for index, code in codes:
            writer.save(PackageCode(code_pk(brand_id, code), "PKCODE", batch_id=batch.batch_id, index=index,
                                    channel=batch.channel, coupon_template_id=batch.coupon_template_id))


def checkpoint(batch: PackageBatch, page: int, minted: int, *, complete: bool, now: str) -> bool:
    """Record that pages < page+1 are written; False if another worker got there first."""
    actions = [PackageBatch.pages_done.set(page + 1), PackageBatch.minted.set(minted)]
    if complete:
        actions += [PackageBatch.state.set("complete"), PackageBatch.completed_at.set(now)]
    try:
        batch.update(actions, condition=PackageBatch.pages_done == page)
        return True
    except UpdateError as err:
        if refused(err):
            return False
        raise


def read_scan(brand_id: str, code: str, guard_key: tuple[str, str]):
    """One BatchGetItem: the code, its spend, the shopper's unknown-code guard."""
    pk = code_pk(brand_id, code)
    found = {(i.pk, i.sk): i for i in Item.batch_get([(pk, "PKCODE"), (pk, "SPENT"), guard_key],
                                                     consistent_read=True)}
    return found.get((pk, "PKCODE")), found.get((pk, "SPENT")), found.get(guard_key)


def get_spend(brand_id: str, code: str) -> PackageSpend | None:
    try:
        return PackageSpend.get(code_pk(brand_id, code), "SPENT", consistent_read=True)
    except DoesNotExist:
        return None


def claim_spend(brand_id: str, code: str, openid: str, now: str) -> bool:
    """The first scan claims the code; False when someone already did."""
    try:
        PackageSpend(code_pk(brand_id, code), "SPENT", openid=openid, claimed_at=now).save(
            condition=PackageSpend.pk.does_not_exist())
        return True
    except PutError as err:
        if refused(err):
            return False
        raise


def record_answer(brand_id: str, code: str, answer: str) -> None:
    PackageSpend(code_pk(brand_id, code), "SPENT").update([PackageSpend.answer.set(answer)])
