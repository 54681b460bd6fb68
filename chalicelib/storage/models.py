"""PynamoDB models: every item siyu stores, in one table.

Keys put the brand first (`B#<brand>#...`) so no query can wander across tenants, and so an IAM
leading-key condition could fence a brand in. Items that are looked up one at a time and written at
high rates (identities, members, inbound markers) get a partition of their own; a brand's small
configuration (stores, guides, channel codes) shares the brand's partition so it can be listed.

| item            | pk                         | sk                 |
|-----------------|----------------------------|--------------------|
| brand           | B#<brand>                  | BRAND              |
| store           | B#<brand>                  | STORE#<store>      |
| guide           | B#<brand>                  | GUIDE#<guide>      |
| guide by WeCom  | B#<brand>                  | WECOMUSER#<userid> |
| channel code    | B#<brand>                  | CHANNEL#<scene>    |
| api key         | KEY#<sha256 of key>        | KEY                |
| app claim       | APP#<namespace>#<app id>   | APP                |
| identity        | B#<brand>#ID#<ns>:<value>  | ID                 |
| member          | B#<brand>#M#<member>       | MEMBER             |
| inbound marker  | B#<brand>#IN#<dedupe key>  | IN                 |
| message         | B#<brand>#MSG#<openid>     | <time>#<msgid>     |
| outbox          | OUT#<event id>             | OUT                |
| campaign        | B#<brand>                  | CAMPAIGN#<campaign> |
| campaign run    | B#<brand>#CAMP#<campaign>  | RUN#<run>, RUN#<run>#SHARD#<nn> (planner cursor), STATS#<run>#<outcome>#<nn>, PARK#<run>#<queue>#<digest>, RATE#<epoch s> |
| delivery ledger | B#<brand>#DLV#<campaign>#<run>#<nn> | <member>  (nn: the member's audience shard) |
| subscribe credit | B#<brand>#CREDIT#<openid> | <template>         |
| frequency count | B#<brand>#FREQ#<member>    | <brand-local day>  |
| WeChat token    | WXTOKEN#<brand>#<kind>#<app_id> | TOKEN         |

(Coupons list their keys beside their models below.)
"""
from __future__ import annotations

import os

from pynamodb.attributes import (BooleanAttribute, DiscriminatorAttribute, ListAttribute, MapAttribute,
                                 NumberAttribute, TTLAttribute, UnicodeAttribute, UnicodeSetAttribute)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import aws
from chalicelib.resources import MAIN


class Gsi1(GlobalSecondaryIndex):
    """The one secondary index: audience shards (members by join time) and wallets (coupons by expiry)."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class Item(Model):
    """Base of every item in the main table; `kind` tells them apart (and filters the outbox stream)."""

    class Meta:
        table_name = os.environ.get(MAIN.env, "siyu-local-main")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        # A callback must be answered inside WeChat's 5 s; a DynamoDB call that takes seconds is
        # better failed fast (WeChat retries, the dedupe marker keeps that safe) than waited for: an
        # unreachable or silent DynamoDB is given up on within 2 x 2 s + backoff (503 unavailable).
        connect_timeout_seconds = 1
        read_timeout_seconds = 2
        max_retry_attempts = 1
        # the sender issues campaign coupons from its WeChat pool's threads (32 by default)
        max_pool_connections = 50

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()

    @classmethod
    def _get_connection(cls):
        """One connection (one botocore client) for every model: they all live in the one table.
        PynamoDB would otherwise make one per model class, each a client of its own; and the client
        is made from the process-wide session (chalicelib.aws), so it costs no session of its own."""
        table = Item._connection
        if table is None:
            with aws.lock:
                table = Item._connection
                if table is None:
                    table = Model._get_connection.__func__(Item)
                    table.connection._local.session = aws.session()
                    table.connection.client              # made now, under the lock, from that session
        return table
    expires_at = TTLAttribute(null=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


def allow_slow_storage(read_timeout_seconds: float) -> None:
    """Raise the read timeout of DynamoDB and of the other AWS clients (before the first request). For
    the local emulator only: it applies DynamoDB requests one at a time, so under a test's deliberate
    contention on a shared 2-core machine a request can queue for longer than the 2 s a callback may
    spend on real DynamoDB, and it loads a service's backend on first use (SSM: seconds)."""
    Item.Meta.read_timeout_seconds = read_timeout_seconds
    Item._connection = None             # the next request makes it again, with the new timeout
    aws.READ_TIMEOUT = max(aws.READ_TIMEOUT, read_timeout_seconds)
    aws.reset_clients()


# ---- tenancy -------------------------------------------------------------------------------

class Brand(Item, discriminator="brand"):
    brand_id = UnicodeAttribute()
    name = UnicodeAttribute()
    timezone = UnicodeAttribute()
    created_at = UnicodeAttribute()
    secret_ref = UnicodeAttribute()               # SSM parameter holding this brand's WeChat secrets
    oa_app_id = UnicodeAttribute(null=True)
    mp_app_id = UnicodeAttribute(null=True)
    wecom_corp_id = UnicodeAttribute(null=True)
    wecom_suite_id = UnicodeAttribute(null=True)  # a third-party (suite) app's callbacks carry this receive id
    auto_reply = UnicodeAttribute(null=True)      # answer to a shopper's text message in the OA
    coupon_retention_days = NumberAttribute(null=True)   # coupons/redemptions age out this long after expiry


class Store(Item, discriminator="store"):
    brand_id = UnicodeAttribute()
    store_id = UnicodeAttribute()
    name = UnicodeAttribute()
    city = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()


class Guide(Item, discriminator="guide"):
    brand_id = UnicodeAttribute()
    guide_id = UnicodeAttribute()
    store_id = UnicodeAttribute()
    name = UnicodeAttribute()
    wecom_user_id = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()


class GuideByWecomUser(Item, discriminator="guide_wecom"):
    """WeCom drops the `State` when a customer re-adds a guide; the guide's UserID still attributes."""
    guide_id = UnicodeAttribute()
    store_id = UnicodeAttribute()


class Channel(Item, discriminator="channel"):
    brand_id = UnicodeAttribute()
    scene = UnicodeAttribute()
    store_id = UnicodeAttribute(null=True)
    guide_id = UnicodeAttribute(null=True)
    source = UnicodeAttribute()
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    welcome_coupon_template_id = UnicodeAttribute(null=True)
    welcome_message = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    page = UnicodeAttribute(null=True)            # the mini-program page its mp code opens


class AppClaim(Item, discriminator="app_claim"):
    """One WeChat app (OA/MP appid, WeCom corp id or suite id) belongs to one brand: written with the
    brand, on the condition that no other brand claimed it first."""
    brand_id = UnicodeAttribute()
    field = UnicodeAttribute()                    # the brand body field that named it: wechat.oa.app_id, …


class ApiKey(Item, discriminator="api_key"):
    role = UnicodeAttribute()                     # platform | brand_admin | store_pos
    brand_id = UnicodeAttribute(null=True)
    store_id = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()


# ---- members -------------------------------------------------------------------------------

class Touch(MapAttribute):
    """Where a member was met: the attribution that first_touch keeps forever and last_touch tracks."""
    store_id = UnicodeAttribute(null=True)
    guide_id = UnicodeAttribute(null=True)
    scene = UnicodeAttribute(null=True)
    source = UnicodeAttribute()
    via = UnicodeAttribute()                      # oa | mp | wecom
    at = UnicodeAttribute()


class Identity(Item, discriminator="identity"):
    member_id = UnicodeAttribute()
    created_at = UnicodeAttribute()


class Member(Item, discriminator="member"):
    brand_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    joined_at = UnicodeAttribute()
    unionid = UnicodeAttribute(null=True)
    oa_openid = UnicodeAttribute(null=True)
    mp_openid = UnicodeAttribute(null=True)
    external_userid = UnicodeAttribute(null=True)
    oa_subscribed = BooleanAttribute(null=True)
    wecom_guides = UnicodeSetAttribute(null=True)  # guides (WeCom UserIDs) the member is a contact of
    first_touch = Touch()
    last_touch = Touch()
    tags = UnicodeSetAttribute(null=True)
    touches = NumberAttribute(default=1)
    # order totals (storage.orders): written with each order and refund, in its transaction
    orders = NumberAttribute(null=True)           # orders recorded; an order's member_order_number
    gmv_cents = NumberAttribute(null=True)        # their amounts net of refunds
    refunded_cents = NumberAttribute(null=True)
    first_order_at = UnicodeAttribute(null=True)
    last_order_at = UnicodeAttribute(null=True)
    # gsi1 (the audience index: campaigns page a brand's members without scanning the table) is
    # sharded, so one brand's joins never concentrate on a single index partition.


class Inbound(Item, discriminator="inbound"):
    """Marks a WeChat callback as handled; written in the same transaction as its effect."""
    event = UnicodeAttribute()


class Message(Item, discriminator="message"):
    brand_id = UnicodeAttribute()
    openid = UnicodeAttribute()
    via = UnicodeAttribute()
    msg_type = UnicodeAttribute()
    content = UnicodeAttribute(null=True)
    received_at = UnicodeAttribute()


class Outbox(Item, discriminator="outbox"):
    """A domain event or follow-up task, committed with the change it announces.

    The stream consumer (handlers/outbox.py) publishes it; nothing is announced that did not happen,
    and nothing that happened goes unannounced.
    """
    topic = UnicodeAttribute()                    # event (to the bus) | task (to the follow-up queue)
    name = UnicodeAttribute()                     # member.joined, welcome, ...
    brand_id = UnicodeAttribute()
    detail = UnicodeAttribute()                   # JSON
    created_at = UnicodeAttribute()


# ---- coupons -------------------------------------------------------------------------------
# | coupon template | B#<brand>#TPL#<template>        | TEMPLATE            |
# | stock shard     | B#<brand>#TPL#<template>#STOCK#<nn> | STOCK  (a partition each: flash-sale claims) |
# | template totals | B#<brand>#TPL#<template>        | TOTAL#<nn>          |
# | member claims   | B#<brand>#CLAIMS#<member>#<tpl> | CLAIMS              |
# | coupon          | B#<brand>#C#<code>              | COUPON  (gsi1: B#<brand>#WALLET#<member>, <valid_until>#<code>) |
# | issue key       | B#<brand>#ISSUE#<key>           | ISSUE               |
# | redemption      | B#<brand>#RDM#<redemption>      | RDM                 |
# | idempotency     | B#<brand>#IDEM#<store>#<key>    | IDEM                |
# | daily stats     | B#<brand>#STATS#<yyyy-mm-dd>#<nn> | <tpl>#<store>     |
# | unknown-code guard | B#<brand>#GUARD#<store>      | <window start>      |
# | order           | B#<brand>#ORDER#<order>         | ORDER               |
# | refund          | B#<brand>#REFUND#<refund>       | REFUND              |
# | order/refund idempotency | B#<brand>#IDEM#<store>#<key> | IDEM#ORDER, IDEM#REFUND (beside a redemption's IDEM) |

class CouponTemplate(Item, discriminator="coupon_template"):
    brand_id = UnicodeAttribute()
    template_id = UnicodeAttribute()
    name = UnicodeAttribute()
    coupon_kind = UnicodeAttribute()
    value = NumberAttribute()
    min_spend_cents = NumberAttribute()
    valid_from = UnicodeAttribute(null=True)
    valid_until = UnicodeAttribute(null=True)
    valid_days_after_claim = NumberAttribute(null=True)
    total_stock = NumberAttribute(null=True)
    per_member_limit = NumberAttribute()
    store_ids = ListAttribute(of=UnicodeAttribute, null=True)
    claim_starts_at = UnicodeAttribute(null=True)
    claim_ends_at = UnicodeAttribute(null=True)
    flash_sale = BooleanAttribute()
    shards = NumberAttribute()
    reversal_voids = BooleanAttribute(default=False)
    # created when a limit of 1 was carried by the coupon's code (domain.coupons.Template.claims_counted)
    limit_code = BooleanAttribute(null=True)
    created_at = UnicodeAttribute()


class StockShard(Item, discriminator="stock_shard"):
    issued = NumberAttribute(default=0)          # created by the shard's first claim; at most its quota


class TemplateTotals(Item, discriminator="template_totals"):
    redeemed = NumberAttribute(default=0)
    reversed = NumberAttribute(default=0)
    discount_cents = NumberAttribute(default=0)


class MemberClaims(Item, discriminator="member_claims"):
    claimed = NumberAttribute(default=0)
    last_issue = UnicodeAttribute(null=True)     # the campaign run that counted last (a retried count is refused)


class Coupon(Item, discriminator="coupon"):
    brand_id = UnicodeAttribute()
    code = UnicodeAttribute()
    template_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    state = UnicodeAttribute()                   # issued | redeemed | void
    coupon_kind = UnicodeAttribute()
    value = NumberAttribute()
    min_spend_cents = NumberAttribute()
    store_ids = ListAttribute(of=UnicodeAttribute, null=True)
    name = UnicodeAttribute()
    valid_from = UnicodeAttribute()
    valid_until = UnicodeAttribute()
    claimed_at = UnicodeAttribute()
    source = UnicodeAttribute()                  # claim | welcome | campaign
    redemption_id = UnicodeAttribute(null=True)
    redeemed_at = UnicodeAttribute(null=True)
    redeemed_store_id = UnicodeAttribute(null=True)
    # the member's first touch when issued (never changes): the scoreboard keys its redemptions by it
    touch_store_id = UnicodeAttribute(null=True)
    touch_guide_id = UnicodeAttribute(null=True)
    touch_scene = UnicodeAttribute(null=True)
    # a coupon under its template's limit code (domain.coupons.limited_by_code): what wrote it (a
    # campaign run `campaign#run`, an issue key, or none for a claim), so a retry knows its own
    issued_by = UnicodeAttribute(null=True)
    # a coupon issued on its own (storage.coupons.issue) announces itself: its INSERT on the stream is
    # its `coupon.issued` with this event id (services.outbox); a campaign's coupons have none (their
    # delivery group's outbox item announces them)
    event_id = UnicodeAttribute(null=True)


class IssueKey(Item, discriminator="issue_key"):
    code = UnicodeAttribute()


class Redemption(Item, discriminator="redemption"):
    brand_id = UnicodeAttribute()
    redemption_id = UnicodeAttribute()
    code = UnicodeAttribute()
    template_id = UnicodeAttribute()
    store_id = UnicodeAttribute()
    till_id = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute()
    order_amount_cents = NumberAttribute()
    discount_cents = NumberAttribute()
    created_at = UnicodeAttribute()
    reversed_at = UnicodeAttribute(null=True)
    linked_order_id = UnicodeAttribute(null=True)  # the order (storage.orders) this redemption was for


class IdempotencyRecord(Item, discriminator="idempotency"):
    request_hash = UnicodeAttribute()
    status = NumberAttribute()
    response = UnicodeAttribute()                # JSON of the answer first given


class DailyStats(Item, discriminator="daily_stats"):
    issued = NumberAttribute(default=0)
    redeemed = NumberAttribute(default=0)
    reversed = NumberAttribute(default=0)
    discount_cents = NumberAttribute(default=0)


class Order(Item, discriminator="order"):
    brand_id = UnicodeAttribute()
    order_id = UnicodeAttribute()
    store_id = UnicodeAttribute(null=True)        # None: online
    member_id = UnicodeAttribute(null=True)       # None: a walk-in
    guide_id = UnicodeAttribute(null=True)        # the order's guide, else the member's first-touch guide
    channel = UnicodeAttribute(null=True)         # the member's first-touch scene
    member_order_number = NumberAttribute(null=True)
    amount_cents = NumberAttribute()
    refunded_cents = NumberAttribute(default=0)
    occurred_at = UnicodeAttribute()
    recorded_at = UnicodeAttribute()
    source = UnicodeAttribute()                   # pos | import
    till_id = UnicodeAttribute(null=True)
    redemption_ids = ListAttribute(of=UnicodeAttribute, null=True)
    items = UnicodeAttribute(null=True)           # JSON of the lines
    template_ids = ListAttribute(of=UnicodeAttribute, null=True)   # of its redemptions: a refund nets their GMV
    conversions = ListAttribute(of=UnicodeAttribute, null=True)    # campaign runs it counts for (domain.conversion)


class OrderRefund(Item, discriminator="order_refund"):
    brand_id = UnicodeAttribute()
    refund_id = UnicodeAttribute()
    order_id = UnicodeAttribute()
    amount_cents = NumberAttribute()
    occurred_at = UnicodeAttribute()
    recorded_at = UnicodeAttribute()


class UnknownCodeGuard(Item, discriminator="guard"):
    misses = NumberAttribute(default=0)


# ---- campaigns -----------------------------------------------------------------------------
# Keys: see the table at the top. A campaign's definition sits in the brand's partition (listed with its other configuration);
# what changes at send rate (ledger, tallies) is spread over partitions of its own.

class Campaign(Item, discriminator="campaign"):
    brand_id = UnicodeAttribute()
    campaign_id = UnicodeAttribute()
    name = UnicodeAttribute()
    state = UnicodeAttribute()                    # scheduled | running | paused | completed | cancelled
    spec = UnicodeAttribute()                     # JSON of domain.campaigns.Spec
    schedule_name = UnicodeAttribute()
    current_run = UnicodeAttribute(null=True)     # run id of the run in progress or last run
    runs = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class CampaignRun(Item, discriminator="campaign_run"):
    """One run of a campaign: planning progress and how many recipients it targeted."""
    run_id = UnicodeAttribute()        # runs written before the rename have `fire` (same value as the sk)
    state = UnicodeAttribute()                    # planning | sending | completed
    targeted = NumberAttribute(default=0)
    shards_done = NumberAttribute(default=0)
    fanned_out = BooleanAttribute(default=False)
    started_at = UnicodeAttribute()
    planned_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)


class PlanShard(Item, discriminator="plan_shard"):
    """The planner's checkpoint on one audience shard: a crash resumes after `cursor`."""
    state = UnicodeAttribute()                    # planning | done
    cursor = UnicodeAttribute(null=True)          # JSON of the last evaluated key
    targeted = NumberAttribute(default=0)
    pages = NumberAttribute(default=0)
    lease_owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)      # epoch seconds


class Tally(Item, discriminator="tally"):
    """One shard of one outcome counter of a run; written in the transaction that finalizes deliveries."""
    n = NumberAttribute(default=0)


class ParkedMessage(Item, discriminator="parked"):
    """A plan or send message set aside while the campaign is paused; resume re-queues it."""
    queue = UnicodeAttribute()
    body = UnicodeAttribute()


class RateWindow(Item, discriminator="rate_window"):
    n = NumberAttribute(default=0)


class Delivery(Item, discriminator="delivery"):
    """The ledger: whether one member is still owed one run's message. One conditional write claims it."""
    state = UnicodeAttribute()                    # sending | retry | sent | skipped | failed
    reason = UnicodeAttribute(null=True)
    claim = UnicodeAttribute(null=True)           # the claiming attempt while state = sending
    lease_until = NumberAttribute(null=True)      # after this the claimant is certainly gone
    credit_used = BooleanAttribute(default=False)
    counted = BooleanAttribute(default=False)     # counted against the member's daily frequency cap
    attempts = NumberAttribute(default=0)
    errcode = NumberAttribute(null=True)
    at = UnicodeAttribute(null=True)
    coupon = UnicodeAttribute(null=True)


class SubscribeCredit(Item, discriminator="subscribe_credit"):
    """One-time subscribe-message credits WeChat granted an openid for a template."""
    brand_id = UnicodeAttribute()
    openid = UnicodeAttribute()
    template_id = UnicodeAttribute()
    credits = NumberAttribute(default=0)
    granted = NumberAttribute(default=0)          # acceptances ever counted
    last_source = UnicodeAttribute(null=True)     # api | push
    last_granted_at = NumberAttribute(null=True)  # epoch seconds
    echo_open = BooleanAttribute(null=True)       # the last grant may still be echoed by the other source
    rejected_at = UnicodeAttribute(null=True)
    revoked_at = UnicodeAttribute(null=True)


class FrequencyCount(Item, discriminator="frequency"):
    n = NumberAttribute(default=0)


class WeChatToken(Item, discriminator="wechat_token"):
    """An app's access token shared by every container; one refresher at a time holds the lease."""
    token = UnicodeAttribute(null=True)
    valid_until = NumberAttribute(null=True)      # epoch seconds
    lease_owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    refreshed_at = UnicodeAttribute(null=True)


# ---- scoreboard ----------------------------------------------------------------------------
# | counters | B#<brand>#SCORE#<dimension> | <brand-local day>#<shard nnn>#<key> (key empty: none applies) |

class ScoreCounter(Item, discriminator="score"):
    """One (dimension, day, key, shard)'s counters (storage.scoreboard), each added to by the transaction
    of the event that moves it; absent metrics are 0."""
    day = UnicodeAttribute()
    score_key = UnicodeAttribute(null=True)    # None: no store (guide, channel) applies
    new_members = NumberAttribute(null=True)
    converted_members = NumberAttribute(null=True)
    repeat_members = NumberAttribute(null=True)
    cohort_gmv_cents = NumberAttribute(null=True)
    orders = NumberAttribute(null=True)
    gmv_cents = NumberAttribute(null=True)
    refunded_cents = NumberAttribute(null=True)
    member_orders = NumberAttribute(null=True)
    member_gmv_cents = NumberAttribute(null=True)
    first_orders = NumberAttribute(null=True)
    repeat_orders = NumberAttribute(null=True)
    coupons_issued = NumberAttribute(null=True)
    coupons_redeemed = NumberAttribute(null=True)
    discount_cents = NumberAttribute(null=True)
    order_gmv_cents = NumberAttribute(null=True)      # a coupon template's: orders that carried its redemptions
    # a guide's WeCom contacts (storage.guides): dimensions guide-contacts (by day) and guide-contacts-now
    contacts = NumberAttribute(null=True)
    contacts_added = NumberAttribute(null=True)
    lost_contacts = NumberAttribute(null=True)
    # head-office tasks (storage.guide_tasks): dimension guide-tasks, on the task's send day
    tasks_assigned = NumberAttribute(null=True)
    tasks_executed = NumberAttribute(null=True)


# ---- guides (storage.guides, storage.guide_tasks) ---------------------------------------------
# | WeCom contact   | B#<brand>#GC#<guide>        | <external_userid>   |
# | WeCom corp tag  | B#<brand>                   | WECOMTAG#<tag name> |

class GuideContact(Item, discriminator="guide_contact"):
    """One customer on one guide's WeCom contact list; its state moves only with the add/del callback
    transaction that also moves the guide's contact counters, so a retried callback counts nothing twice."""
    state = UnicodeAttribute()                    # contact | removed
    member_id = UnicodeAttribute(null=True)
    changed_at = UnicodeAttribute()


class WecomTag(Item, discriminator="wecom_tag"):
    """A brand tag's WeCom corp tag id (externalcontact/add_corp_tag), made on first mirror."""
    tag_id = UnicodeAttribute()


# ---- head-office tasks (storage.guide_tasks) ----------------------------------------------------
# | guide task      | B#<brand>                   | GTASK#<task>             |
# | task's guide    | B#<brand>#GT#<task>         | G#<guide>                |
# | chunk ledger    | B#<brand>#GT#<task>         | C#<guide>#<nnnn>         |
# | guide's tasks   | B#<brand>#GUIDETASKS#<guide> | <send_at>#<task>        |
# | daily 群发 cap   | B#<brand>#WDAY#<external_userid> | <brand-local day>   |

class GuideTask(Item, discriminator="guide_task"):
    brand_id = UnicodeAttribute()
    task_id = UnicodeAttribute()
    name = UnicodeAttribute()
    spec = UnicodeAttribute()                     # JSON of domain.guide_tasks.TaskSpec
    state = UnicodeAttribute()                    # scheduled | running | completed
    schedule_name = UnicodeAttribute()
    guides_assigned = NumberAttribute(default=0)
    fanned_out = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    final = UnicodeAttribute(null=True)           # JSON of the figures announced at completion


class GuideTaskGuide(Item, discriminator="guide_task_guide"):
    """One guide's part of a task: planned once, then its chunks' WeCom results, SET by each poll."""
    guide_id = UnicodeAttribute()
    store_id = UnicodeAttribute()
    wecom_user_id = UnicodeAttribute()
    state = UnicodeAttribute()                    # pending | planning | planned | created
    lease_until = NumberAttribute(null=True)      # while planning: the planner's lease (epoch seconds)
    chunks = NumberAttribute(default=0)
    executed = BooleanAttribute(default=False)
    sent = NumberAttribute(default=0)
    capped = NumberAttribute(default=0)
    not_contact = NumberAttribute(default=0)
    unconfirmed = NumberAttribute(default=0)
    polled_at = UnicodeAttribute(null=True)


class GuideTaskChunk(Item, discriminator="guide_task_chunk"):
    """The ledger entry of one add_msg_template call: written (creating) before the call, holding the
    msgid after it; a claimant that died in between is reconciled through get_groupmsg_list_v2."""
    guide_id = UnicodeAttribute()
    state = UnicodeAttribute()                    # planned | creating | created | failed
    recipients = UnicodeAttribute()               # external_userids, one per line
    msgid = UnicodeAttribute(null=True)
    refused = UnicodeAttribute(null=True)         # add_msg_template's fail_list, one per line
    attempts = NumberAttribute(default=0)
    attempt_at = NumberAttribute(null=True)       # epoch seconds of the last claim
    lease_until = NumberAttribute(null=True)
    errcode = NumberAttribute(null=True)
    confirmed = BooleanAttribute(default=False)
    sent = NumberAttribute(default=0)
    capped = NumberAttribute(default=0)
    not_contact = NumberAttribute(default=0)
    unconfirmed = NumberAttribute(default=0)


class GuideTaskPointer(Item, discriminator="guide_task_pointer"):
    task_id = UnicodeAttribute()


class WecomDaily(Item, discriminator="wecom_daily"):
    """A customer received a group message from the brand on this day: WeCom allows one a day."""
    n = NumberAttribute(default=1)


# ---- printable codes (issue 11) ------------------------------------------------------------
# | channel code's code | B#<brand>                     | CODE#<scene>#<app>  |
# | code quota counter  | B#<brand>                     | CODEQUOTA#<app>     |
# | mp per-minute count | B#<brand>#CODERATE            | <app>#<minute>      |

class ChannelCode(Item, discriminator="channel_code"):
    """The code WeChat issued for one channel and app: claimed before WeChat is called (so one
    request creates it), then `created` (WeChat's ids known), then `ready` (its PNG in S3)."""
    brand_id = UnicodeAttribute()
    scene = UnicodeAttribute()
    app = UnicodeAttribute()
    status = UnicodeAttribute()                   # claimed | unknown | created | ready
    claim_id = UnicodeAttribute()
    claimed_at = NumberAttribute()
    ticket = UnicodeAttribute(null=True)          # oa
    config_id = UnicodeAttribute(null=True)       # wecom
    user_id = UnicodeAttribute(null=True)         # wecom: the guide's UserID the contact way adds
    url = UnicodeAttribute(null=True)             # what the code encodes / WeChat's link to it
    image_url = UnicodeAttribute(null=True)       # where WeChat serves the image (oa showqrcode, wecom qr_code)
    s3_key = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    code_expires_at = UnicodeAttribute(null=True)  # not `expires_at`: that one is the table's TTL


class CodeCounter(Item, discriminator="code_counter"):
    n = NumberAttribute(default=0)


# ---- package codes (issue 11 §2) -----------------------------------------------------------
# | package batch       | B#<brand>                     | PKBATCH#<batch>     |
# | package code        | B#<brand>#PKC#<code>          | PKCODE              |
# | its spend           | B#<brand>#PKC#<code>          | SPENT               |

class PackageBatch(Item, discriminator="package_batch"):
    """A batch of package codes: minted by a worker page by page (`pages_done` is its checkpoint);
    code i is derived from `secret` and i, so a page minted again after a crash is the same codes."""
    brand_id = UnicodeAttribute()
    batch_id = UnicodeAttribute()
    count = NumberAttribute()
    channel = UnicodeAttribute()
    coupon_template_id = UnicodeAttribute()
    secret = UnicodeAttribute()
    request_hash = UnicodeAttribute()
    state = UnicodeAttribute()                    # minting | complete
    pages_done = NumberAttribute(default=0)
    minted = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)


class PackageCode(Item, discriminator="package_code"):
    batch_id = UnicodeAttribute()
    index = NumberAttribute()
    channel = UnicodeAttribute()
    coupon_template_id = UnicodeAttribute()


class PackageSpend(Item, discriminator="package_spend"):
    """The first shopper to open the mini-program from a code: claimed before they join, and the
    answer they got, replayed to their retries."""
    openid = UnicodeAttribute()
    claimed_at = UnicodeAttribute()
    answer = UnicodeAttribute(null=True)


# ---- the tag index (storage.audience) --------------------------------------------------------
# | tag entry         | B#<brand>#TAG#<tag>#<nn> | <member>  (nn: the member's audience shard) |
# | tag index state   | B#<brand>                | TAGINDEX  (present: every member's tags have entries) |

class TagEntry(Item, discriminator="tag_entry"):
    """A member carries a tag: written and deleted in the transaction that changes the member's tags, so
    a campaign to a rare tag reads its members without scanning the brand's."""
    member_id = UnicodeAttribute()


class TagIndexState(Item, discriminator="tag_index_state"):
    """The brand's tag index is complete (written at brand creation, or after a backfill): only then may
    the planner read it instead of the audience index."""
    since = UnicodeAttribute()


# ---- the delivery ledger (storage.ledger) ---------------------------------------------------
# | reach           | B#<brand>#REACH#<member>   | REACH              |
# | delivery group  | B#<brand>#DLV#<campaign>#<run>#<nn> | G#<group>#<part>  (nn: the group's ledger shard) |
# A run's claim on a member is an attribute `R#<campaign>#<run>` of one item (the member's credit
# item for a credit-consuming medium, else the member's reach item), written by one conditional
# UpdateItem; the outcomes of a group of recipients are one delivery-group item, written in one
# transaction with the run's tallies. Attribute names vary per run, so storage.ledger writes them
# with the low-level client; these models name the items for everything else.

class Reach(Item, discriminator="reach"):
    """A member's claims by runs of media without credits (`R#...` attributes) and send counts
    per brand-local day (`F#<day>`) for the frequency cap."""


class DeliveryGroup(Item, discriminator="delivery_group"):
    """Outcomes of up to storage.ledger.GROUP recipients: JSON {member: [state, reason, errcode, coupon]}."""
    entries = UnicodeAttribute()
    at = UnicodeAttribute(null=True)


class ConversionMarker(Item, discriminator="conversion_marker"):
    """A member's attributed orders of one campaign run (storage.conversion): its first counts the
    member as converted, a refund of its last takes them off; writes are conditional on the count read."""
    group = UnicodeAttribute(null=True)
    orders = NumberAttribute(default=0)


class ConversionCounter(Item, discriminator="conversion_counter"):
    """One shard of a campaign run's conversion counters for one group (sent | held_out)."""
    orders = NumberAttribute(default=0)
    gmv_cents = NumberAttribute(default=0)
    members = NumberAttribute(default=0)
