"""Package-code figures: how fast a batch is minted (codes/s over a batch of 10,000, and the time that
projects for the largest batch, 100,000 codes, which mints page by page at the same rate) on the
local emulator, and what the printer's CSV of 100,000 codes costs to derive.

The worker is run in-process (handlers' code path: services.package_codes.mint, page by page with a
checkpoint each), against the emulator, which applies DynamoDB requests one at a time: on DynamoDB a
page's 40 BatchWriteItems go to 1,000 different partitions, so this is a floor, not a ceiling.
"""
from __future__ import annotations

import os
import time

COUNT = 10_000                   # minted here (a 100,000 batch takes ~6 min on the emulator)
LARGEST = 100_000


def run() -> list[tuple[str, str]]:
    from bench import counting
    from bench.coupons import _setup
    stack = _setup()
    try:
        from chalicelib.domain import package_codes as rules
        from chalicelib.services import coupons, package_codes
        from chalicelib.storage import package_codes as package_code_store
        from chalicelib.storage.models import PackageBatch
        tpl = coupons.create_template("demo", {"name": "pk", "kind": "cash_off", "value": 1000,
                                               "valid_days_after_claim": 30, "total_stock": COUNT,
                                               "per_member_limit": 1})["template_id"]
        package_code_store.create_batch(PackageBatch(*package_code_store.batch_key("demo", "bench"), brand_id="demo", batch_id="bench",
                                        count=COUNT, channel="S2", coupon_template_id=tpl,
                                        secret=os.urandom(32).hex(), request_hash="-", state="minting", pages_done=0,
                                        minted=0, created_at="2026-01-01T00:00:00Z"))
        started = time.perf_counter()
        with counting.Window() as w:
            assert package_codes.mint("demo", "bench")
        took = time.perf_counter() - started
        batch = package_code_store.get_batch("demo", "bench")
        assert int(batch.minted) == COUNT and batch.state == "complete"
        started = time.perf_counter()
        text = "".join(f"{c},{rules.scene(c)}\n" for c in rules.codes(os.urandom(32), 0, LARGEST))
        csv_took = time.perf_counter() - started
        assert text.count("\n") == LARGEST
        assert package_codes.csv("demo", "bench").count("\n") == COUNT + 1
        return [
            (f"package codes minted per second (a batch of {COUNT:,}, local emulator, one worker)",
             f"{COUNT / took:,.0f} codes/s"),
            (f"time to mint {COUNT:,} package codes", f"{took:.1f} s ({rules.pages(COUNT)} pages of {rules.PAGE:,}; "
                                                      f"{w.total:,} AWS requests)"),
            (f"projected time to mint {LARGEST:,} package codes (same rate, {rules.pages(LARGEST)} pages)",
             f"{took * LARGEST / COUNT / 60:.1f} min"),
            (f"time to derive the printer's CSV of {LARGEST:,} codes", f"{csv_took:.2f} s ({len(text) / 1e6:.1f} MB)"),
        ]
    finally:
        stack.stop()
