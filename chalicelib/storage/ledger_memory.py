"""The delivery ledger's contract in memory (services.sending.LedgerStore), for the sender's tests.

Same keys, same marks, same conditions as storage.ledger, applied to dicts under one lock: a
claim sets the run's mark only where none exists (or replaces the exact released mark), takes
the credit and counts the cap day in the same step; a group part is written once; closing a stale
claim replaces the exact mark read. Tests seed `items` (credits) and read `outcomes`/`tallies`.
"""
from __future__ import annotations

import threading
from datetime import datetime

from chalicelib.storage import ledger as real
from chalicelib.storage.ledger import Claim, Final, Mark, Seen


class MemoryLedger:
    def __init__(self, brand_id: str = "b1", campaign_id: str = "c1", run_id: str = "once"):
        self._keys = real.Ledger(brand_id, campaign_id, run_id)
        self.mark_attr = self._keys.mark_attr
        self.items: dict[tuple[str, str], dict] = {}
        self.parts: dict[tuple[str, int], dict[str, list]] = {}
        self.tallies: dict[str, int] = {}
        self.extended: list = []          # (group part, extend) handed to record/close
        self.writes = 0
        self.lock = threading.Lock()

    # keys are the real ledger's
    def claim_item(self, member_id, openid, template, capped=False):
        return self._keys.claim_item(member_id, openid, template, capped)

    def item_attrs(self, key, openid, template):
        return self._keys.item_attrs(key, openid, template)

    def credit(self, key: tuple[str, str], n: int) -> None:
        self.items.setdefault(key, {})["credits"] = n

    def prefetch(self, keys, credit_keys, day, now) -> dict[str, Seen]:
        with self.lock:
            out = {}
            for member_id, key in keys.items():
                item = self.items.get(key, {})
                credit_item = self.items.get(credit_keys.get(member_id, key), {})
                out[member_id] = Seen(item.get(self.mark_attr), int(credit_item.get("credits", 0)),
                                      int(item.get(real.day_name(day), 0)) if day else 0)
            return out

    def read_mark(self, key):
        with self.lock:
            item = dict(self.items.get(key, {}))
            return item.get(self.mark_attr), {k: {"N": str(v)} if isinstance(v, int) else {"S": v}
                                              for k, v in item.items()}

    def claim(self, c: Claim) -> str:
        with self.lock:
            item = self.items.setdefault(c.item, {})
            current = item.get(self.mark_attr)
            if (current != c.replaces) if c.replaces else (current is not None):
                return "marked"
            fresh = not c.replaces
            if c.credit and fresh and c.credit_item is None and int(item.get("credits", 0)) < 1:
                return "no_credit"
            day = real.day_name(c.frequency[0]) if c.frequency is not None and fresh else None
            if day is not None and int(item.get(day, 0)) >= c.frequency[1]:
                return "frequency_capped"
            item[self.mark_attr] = c.mark.text()
            self.writes += 1
            if c.hold:                                   # checked like a claim, nothing taken
                return "claimed"
            if day is not None:
                item[day] = int(item.get(day, 0)) + 1
            if c.credit and fresh and c.credit_item is None:
                item["credits"] = int(item["credits"]) - 1
            if not (c.credit and fresh and c.credit_item is not None):
                return "claimed"
            # the credit lives on its own item: taken by a second write, or the mark becomes a skip
            credit_item = self.items.setdefault(c.credit_item, {})
            self.writes += 1
            if int(credit_item.get("credits", 0)) >= 1:
                credit_item["credits"] = int(credit_item["credits"]) - 1
                return "claimed"
            item[self.mark_attr] = Mark("k", c.mark.group, c.mark.lease, c.mark.at, "no_credit").text()
            if day is not None:
                item[day] -= 1
            return "skip:no_credit"

    def release(self, key, claimed: str, released: Mark) -> bool:
        with self.lock:
            item = self.items.get(key, {})
            if item.get(self.mark_attr) != claimed:
                return False
            item[self.mark_attr] = released.text()
            return True

    def record(self, group: str, part: int, finals: list[Final], now: datetime, extend=None) -> bool:
        with self.lock:
            if (group, part) in self.parts:
                return False
            if extend is not None:      # what a coupon adds is DynamoDB's to commit: kept for tests to look at
                self.extended.append(((group, part), extend))
            self.parts[(group, part)] = {f.member_id: [f.state, f.reason, f.errcode, f.coupon] for f in finals}
            for outcome, n in real._counts(finals).items():
                self.tallies[outcome] = self.tallies.get(outcome, 0) + n
            return True

    def close(self, key, seen: str, final: Final, now: datetime, extend=None) -> bool:
        with self.lock:
            item = self.items.get(key, {})
            if item.get(self.mark_attr) != seen:
                return False
            group = real.new_group()
            if extend is not None:
                self.extended.append(((group, 0), extend))
            item[self.mark_attr] = Mark("f", group, 0, int(now.timestamp()), final.reason).text()
            self.parts[(group, 0)] = {final.member_id: [final.state, final.reason, final.errcode, final.coupon]}
            for outcome, n in real._counts([final]).items():
                self.tallies[outcome] = self.tallies.get(outcome, 0) + n
            return True

    def group_outcomes(self, group: str) -> dict[str, list]:
        with self.lock:
            out: dict[str, list] = {}
            for (g, _part), entries in self.parts.items():
                if g == group:
                    out.update(entries)
            return out

    # -- what tests read ----------------------------------------------------------------------------
    def outcomes(self) -> dict[str, list]:
        """Every recorded outcome by member; a member recorded twice would raise."""
        out: dict[str, list] = {}
        for entries in self.parts.values():
            for member, entry in entries.items():
                assert member not in out, f"{member} recorded twice"
                out[member] = entry
        return out

    def mark_of(self, key) -> Mark | None:
        text = self.items.get(key, {}).get(self.mark_attr)
        return Mark.parse(text) if text else None
