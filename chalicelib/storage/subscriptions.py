"""Subscribe-message credits: granted per openid and template, counted once per acceptance."""
from __future__ import annotations

from datetime import datetime

from chalicelib.domain import campaigns as rules
from chalicelib.storage.models import SubscribeCredit
from chalicelib.storage.tx import Tx
from chalicelib.storage.campaign_keys import _kind, credit_key

# ---- subscribe credits -----------------------------------------------------------------------

def _echo_condition(source: str, now: float):
    """The credit item's last grant came from the other source moments ago and is not yet echoed."""
    return ((SubscribeCredit.echo_open == True) & (SubscribeCredit.last_source != source)  # noqa: E712
            & (SubscribeCredit.last_granted_at >= now - rules.ECHO_WINDOW_SECONDS))


def record_subscriptions(brand_id: str, openid: str, changes: rules.SubscriptionChanges, *, source: str,
                         now: datetime, inbound: str | None = None) -> bool:
    """Apply what a popup or settings change said, in one transaction with the callback's inbound
    marker (so WeChat's retries count nothing twice). An acceptance adds one credit unless it is the
    other source's report of an acceptance already counted (domain.ECHO_WINDOW_SECONDS).
    Returns False when the inbound marker shows the callback was handled before."""
    from chalicelib.storage.models import Inbound
    from chalicelib.storage.members import INBOUND_RETENTION, inbound_key
    epoch = now.timestamp()
    echoes: set[str] = set()
    for _attempt in range(4):
        tx = Tx()
        if inbound:
            tx.save("inbound", Inbound(inbound_key(brand_id, inbound), "IN", event="subscriptions",
                                         expires_at=now + INBOUND_RETENTION), Inbound.pk.does_not_exist())
        for template in changes.accepted:
            item = SubscribeCredit(*credit_key(brand_id, openid, template))
            base = [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id), SubscribeCredit.openid.set(openid),
                    SubscribeCredit.template_id.set(template)]
            if template in echoes:
                tx.update(f"echo:{template}", item, base + [SubscribeCredit.echo_open.set(False)],
                             _echo_condition(source, epoch))
            else:
                tx.update(f"grant:{template}", item,
                             base + [SubscribeCredit.credits.add(1), SubscribeCredit.granted.add(1),
                                     SubscribeCredit.last_source.set(source),
                                     SubscribeCredit.last_granted_at.set(epoch), SubscribeCredit.echo_open.set(True)],
                             ~_echo_condition(source, epoch))
        for template in changes.rejected:
            tx.update(f"reject:{template}", SubscribeCredit(*credit_key(brand_id, openid, template)),
                         [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id),
                          SubscribeCredit.openid.set(openid), SubscribeCredit.template_id.set(template),
                          SubscribeCredit.rejected_at.set(now.isoformat())])
        for template in changes.revoked:
            tx.update(f"revoke:{template}", SubscribeCredit(*credit_key(brand_id, openid, template)),
                         [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id),
                          SubscribeCredit.openid.set(openid), SubscribeCredit.template_id.set(template),
                          SubscribeCredit.credits.set(0), SubscribeCredit.echo_open.set(False),
                          SubscribeCredit.revoked_at.set(now.isoformat())])
        failed = tx.attempt()
        if not failed:
            return True
        if "inbound" in failed:
            return False
        # grants that met an unechoed grant from the other source become echoes, and vice versa
        for label in failed:
            kind, template = label.split(":", 1)
            if kind == "grant":
                echoes.add(template)
            elif kind == "echo":
                echoes.discard(template)
    raise RuntimeError("subscription credits kept changing under us")


def credits_of(brand_id: str, openid: str) -> dict[str, int]:
    # an item a campaign created only to mark a skip (no grant, no answer) is no subscription
    return {c.template_id: int(c.credits or 0)
            for c in SubscribeCredit.query(f"B#{brand_id}#CREDIT#{openid}", consistent_read=True)
            if c.granted or c.credits or c.rejected_at or c.revoked_at}
