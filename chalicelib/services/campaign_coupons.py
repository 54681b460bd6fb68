"""A campaign's coupon, issued through the delivery ledger (issue 10).

Which templates take this path (`fast_path`): those without a total stock (not a flash sale). For
them nothing per recipient needs a transaction: the run's mark (storage.ledger) already makes one
send per run per member, the coupon's code is derived from (campaign, run, member) with a brand key
(domain.coupons.derived_code), so a retry writes the same coupon or finds it (one conditional
PutItem, no issue-key item), and the per-member limit is one conditional UpdateItem naming the run.
The counters (template issued, scoreboard coupons_issued) and the `coupon.issued` events are added
per delivery group in the group's record transaction, so they are exact and never counted twice.
A template whose limit is 1 (domain.coupons.limited_by_code) takes no allowance: its coupon's code
is the member's code of the template, the same for every issuer (claims, welcomes, every run), so
the conditional put is the limit; the coupon names the run (`issued_by`) so a retry finds its own.
A template with a total stock keeps services.coupons.issue_coupon (a transaction per coupon): its
stock shards cap every issuer at once, which a per-group count could not do without reserving stock.

A claimant that died after the send: the next attempt finds the mark and no outcome; a coupon under
the derived code proves the message was sent (a coupon is written only after WeChat accepted it), so
the recipient is closed `sent` with its coupon, counted in that close's transaction; no coupon: the
outcome is unknown (`failed: outcome_unknown`) and no coupon is ever issued for it.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

from chalicelib.domain import coupons as rules
from chalicelib.domain import scoreboard as score
from chalicelib.services import coupons
from chalicelib.storage import campaign_coupons as campaign_coupon_store
from chalicelib.storage import coupons as coupon_store
from chalicelib.storage import members
from chalicelib.storage import scoreboard as counters

MAX_TX_ITEMS = 100


def fast_path(t: rules.Template) -> bool:
    return t.total_stock is None and not t.flash_sale


def code_key(brand) -> bytes:
    """The brand's key for derived coupon codes (its own HMAC purpose under the brand's secret)."""
    return hmac.new(coupons._code_secret(brand), b"siyu campaign coupon code", hashlib.sha256).digest()


class CampaignCoupons:
    """One run's coupon: issue per delivered recipient, count per delivery group."""

    def __init__(self, brand, campaign_id: str, run_id: str, template_id: str):
        self.brand, self.campaign_id, self.run_id = brand, campaign_id, run_id
        self.template = coupons.cached_template(brand.brand_id, template_id)
        self.fast = fast_path(self.template)
        self.by_code = self.fast and rules.limited_by_code(self.template)
        self.issue_id = f"{campaign_id}#{run_id}"
        self._key = code_key(brand) if self.fast else b""
        self._limit_key = coupons.limit_key(brand) if self.by_code else b""
        self._issued: dict[str, tuple[score.Keys, str, str]] = {}     # member -> (touch keys, day, valid_until)

    def code(self, member_id: str) -> str:
        """The member's code: of the template (a limit of 1, any issuer) or of this run (a higher limit)."""
        if self.by_code:
            return rules.limit_code(self._limit_key, self.template.template_id, member_id)
        return self._run_code(member_id)

    def _run_code(self, member_id: str) -> str:
        return rules.derived_code(self._key, self.campaign_id, self.run_id, member_id)

    def issue(self, member_id: str, claimed_at: datetime, touch: tuple | None = None) -> str:
        """After WeChat accepted the message: the member's coupon, or "none" at the member's limit.
        `claimed_at`: the recipient's claim time (its group's), so a group's coupons share a validity;
        `touch`: the member's first touch (store, guide, scene) as the chunk carries it (None: read)."""
        brand_id, t = self.brand.brand_id, self.template
        if self.by_code:
            # the put under the member's limit code is the limit; the claims counter only holds what
            # was counted before the code carried the limit, so it is read for templates made before
            # (with the member when the chunk does not carry its first touch)
            member, claimed = None, 0
            if t.claims_counted and touch is None:
                member, claimed = campaign_coupon_store.member_and_claims(brand_id, member_id, t.template_id)
            elif t.claims_counted:
                claimed = campaign_coupon_store.claimed(brand_id, member_id, t.template_id)
            elif touch is None:
                member = members.get_member(brand_id, member_id)
            if claimed >= t.per_member_limit:
                return "none"
            coupon = campaign_coupon_store.put_limited(self._new(member_id, claimed_at, member, touch))
            if coupon is None:
                return "none"
        else:
            if not campaign_coupon_store.take_allowance(brand_id, member_id, t.template_id, t.per_member_limit,
                                                        self.issue_id):
                return "none"
            member = members.get_member(brand_id, member_id) if touch is None else None
            coupon = campaign_coupon_store.put(self._new(member_id, claimed_at, member, touch))
        self._remember(coupon)
        return coupon.code

    def _new(self, member_id: str, claimed_at: datetime, member, touch: tuple | None):
        keys = (dict(zip(("store_id", "guide_id", "scene"), touch)) if touch is not None
                else coupons._first_touch(member))
        return coupon_store.new_coupon(
            self.brand.brand_id, self.template, member_id=member_id, code=self.code(member_id), now=claimed_at,
            source="campaign", retention_days=coupons.retention(self.brand), touch=keys,
            issued_by=self.issue_id if self.by_code else None)

    def evidence(self, member_id: str) -> str | None:
        """The member's coupon of this run if it was written (so the message was sent), else None.
        Under a limit code only the coupon this run wrote (`issued_by`) counts: the member may hold
        one from an earlier run or a claim, which proves nothing of this send. (A claimant that ran
        the code before limit codes wrote the run's derived code: looked for too.)"""
        b, t = self.brand.brand_id, self.template.template_id
        found = campaign_coupon_store.evidence(b, self.code(member_id), member_id, t,
                                               self.issue_id if self.by_code else None)
        if found is None and self.by_code:
            found = campaign_coupon_store.evidence(b, self._run_code(member_id), member_id, t)
        if found is None:
            return None
        self._remember(found)
        return found.code

    def _remember(self, c) -> None:
        keys = score.Keys(c.touch_store_id, c.touch_guide_id, c.touch_scene)
        day = score.local_day(coupon_store.parse(c.claimed_at), self.brand.timezone)
        self._issued[c.member_id] = (keys, day, c.valid_until)

    # -- per group ------------------------------------------------------------------------------
    def _issued_in(self, finals) -> list[tuple[str, str, score.Keys, str]]:
        out = []
        for f in finals:
            if f.state == "sent" and f.coupon and rules.normalize_code(f.coupon):
                if f.member_id not in self._issued:      # every coupon of this run passed through issue/evidence
                    raise RuntimeError(f"coupon {f.coupon} of {f.member_id} was not issued by this run's sender")
                keys, day, _until = self._issued[f.member_id]
                out.append((f.member_id, f.coupon, keys, day))
        return out

    def parts(self, finals: list, fixed_items: int) -> list[list]:
        """`finals` cut so that each part's transaction (its `fixed_items` outcome item and tallies, and
        the coupons' counters) stays within DynamoDB's 100 items, and each part's coupons share a
        validity (one event item each). One part unless members of many stores/guides share a group.
        The part's counter items and validities are kept as it grows (linear in the group)."""
        parts: list[list] = [[]]
        keys: set = set()
        untils: set = set()
        for f in finals:
            mine_keys, mine_untils = set(), set()
            for member_id, _code, touch, day in self._issued_in([f]):
                mine_keys |= campaign_coupon_store.counter_keys(self.template, touch, day)
                mine_untils.add(self._issued[member_id][2])
            grown = len(keys | mine_keys)
            if parts[-1] and (fixed_items + campaign_coupon_store.COUNTER_FIXED_ITEMS + grown > MAX_TX_ITEMS - 2
                              or len(untils | mine_untils) > 1):
                parts.append([f])
                keys, untils = mine_keys, mine_untils
            else:
                parts[-1].append(f)
                keys |= mine_keys
                untils |= mine_untils
        return parts

    def extension(self, finals: list):
        """What `finals` (one group part) add to its record/close transaction, or None (no coupon)."""
        issued = self._issued_in(finals)
        if not issued:
            return None
        until = self._issued[issued[0][0]][2]

        def extend(tx, outcome_key) -> None:
            campaign_coupon_store.add_issued(tx, self.brand.brand_id, self.template, issued, outcome_key, valid_until=until,
                             campaign_id=self.campaign_id, run_id=self.run_id,
                             shard=counters.shard_of(outcome_key[1]), now=datetime.now(timezone.utc))
        return extend
