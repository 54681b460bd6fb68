"""Brands, stores, guides, channel codes and API keys. Writes are single transactions whose
conditions say what must (not) exist, so a refused write changes nothing."""
from __future__ import annotations

import hashlib
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.cache import TTLCache
from chalicelib.errors import Conflict, NotFound
from chalicelib.storage.models import ApiKey, AppClaim, Brand, Channel, Guide, GuideByWecomUser, Item, Store
from chalicelib.storage.tx import Tx

_brands = TTLCache(ttl_seconds=60)
_keys = TTLCache(ttl_seconds=60)


def brand_pk(brand_id: str) -> str:
    return f"B#{brand_id}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def app_claim_key(space: str, app_id: str) -> str:
    return f"APP#{space}#{app_id}"


def create_brand(fields: dict, secret_ref: str, admin_key: str, now: datetime,
                 claims: list[tuple[str, str, str]]) -> Brand:
    """Write the brand, its admin key and its claims on each app id (`claims`: (id space, app id,
    body field)) in one transaction: a brand id or an app id another brand holds refuses it all
    (409 brand_exists / app_already_registered), however many creations race."""
    brand = Brand(brand_pk(fields["brand_id"]), "BRAND", brand_id=fields["brand_id"], name=fields["name"],
                  timezone=fields["timezone"], created_at=now.isoformat(), secret_ref=secret_ref,
                  auto_reply=fields.get("auto_reply"), coupon_retention_days=fields.get("coupon_retention_days"),
                  **fields["public"])
    tx = Tx()
    refusals: dict[str, Exception] = {
        "brand": Conflict(f"brand {fields['brand_id']} already exists", code="brand_exists")}
    tx.save("brand", brand, condition=Brand.pk.does_not_exist())
    tx.save("key", _key(admin_key, "brand_admin", now, brand_id=fields["brand_id"]),
            condition=ApiKey.pk.does_not_exist())
    for space, app_id, field in claims:
        tx.save(f"app:{field}", AppClaim(app_claim_key(space, app_id), "APP", brand_id=fields["brand_id"],
                                         field=field), condition=AppClaim.pk.does_not_exist())
        refusals[f"app:{field}"] = Conflict(f"{field} {app_id} is already registered to another brand",
                                            code="app_already_registered")
    tx.commit(refusals)
    _brands.invalidate(fields["brand_id"])
    return brand


def delete_brand(brand_id: str, secret_ref: str, admin_key: str, claims: list[tuple[str, str, str]]) -> None:
    """Undo create_brand (its secrets could not be written): the brand, its key and its app claims go,
    each only if it is still this creation's (the brand names `secret_ref`, the claims `brand_id`)."""
    tx = Tx()
    tx.delete("brand", Brand(brand_pk(brand_id), "BRAND"), condition=Brand.secret_ref == secret_ref)
    tx.delete("key", ApiKey(f"KEY#{key_hash(admin_key)}", "KEY"), condition=ApiKey.brand_id == brand_id)
    for space, app_id, field in claims:
        tx.delete(f"app:{field}", AppClaim(app_claim_key(space, app_id), "APP"),
                  condition=AppClaim.brand_id == brand_id)
    tx.commit()
    _brands.invalidate(brand_id)


def claim_apps_of_existing_brands(claims_of) -> dict:
    """Write the app-id claims of brands created before claims existed (`claims_of(brand)` says which);
    idempotent. An app id two brands already share is left to an operator and reported."""
    from pynamodb.exceptions import PutError
    brands, claimed, conflicts = 0, 0, []
    for brand in Brand.scan(Item.sk == "BRAND"):
        brands += 1
        for space, app_id, field in claims_of(brand):
            claim = AppClaim(app_claim_key(space, app_id), "APP", brand_id=brand.brand_id, field=field)
            try:
                claim.save(condition=AppClaim.pk.does_not_exist() | (AppClaim.brand_id == brand.brand_id))
                claimed += 1
            except PutError as err:
                if err.cause_response_code != "ConditionalCheckFailedException":
                    raise
                holder = AppClaim.get(app_claim_key(space, app_id), "APP", consistent_read=True).brand_id
                conflicts.append({"field": field, "app_id": app_id, "brand_id": brand.brand_id, "held_by": holder})
    return {"brands": brands, "claims": claimed, "conflicts": conflicts}


def _key(key: str, role: str, now: datetime, *, brand_id: str | None = None, store_id: str | None = None) -> ApiKey:
    return ApiKey(f"KEY#{key_hash(key)}", "KEY", role=role, brand_id=brand_id, store_id=store_id,
                  created_at=now.isoformat())


def get_brand(brand_id: str) -> Brand | None:
    def load():
        try:
            return Brand.get(brand_pk(brand_id), "BRAND")
        except DoesNotExist:
            return None
    return _brands.get_or_load(brand_id, load)


def require_brand(brand_id: str) -> Brand:
    brand = get_brand(brand_id)
    if brand is None:
        raise NotFound(f"no brand {brand_id}", code="unknown_brand")
    return brand


def _must_exist(tx: Tx, label: str, model_cls, brand_id: str, sk: str) -> None:
    tx.check(label, model_cls, brand_pk(brand_id), sk, condition=model_cls.pk.exists())


def create_store(brand_id: str, fields: dict, pos_key: str, now: datetime) -> Store:
    store = Store(brand_pk(brand_id), f"STORE#{fields['store_id']}", brand_id=brand_id, created_at=now.isoformat(),
                  **fields)
    tx = Tx()
    _must_exist(tx, "brand", Brand, brand_id, "BRAND")
    tx.save("store", store, condition=Store.pk.does_not_exist())
    tx.save("key", _key(pos_key, "store_pos", now, brand_id=brand_id, store_id=fields["store_id"]),
            condition=ApiKey.pk.does_not_exist())
    tx.commit({"brand": NotFound(f"no brand {brand_id}", code="unknown_brand"),
               "store": Conflict(f"store {fields['store_id']} already exists", code="store_exists")})
    return store


def create_guide(brand_id: str, fields: dict, now: datetime) -> Guide:
    guide = Guide(brand_pk(brand_id), f"GUIDE#{fields['guide_id']}", brand_id=brand_id, created_at=now.isoformat(),
                  **fields)
    tx = Tx()
    _must_exist(tx, "store", Store, brand_id, f"STORE#{fields['store_id']}")
    tx.save("guide", guide, condition=Guide.pk.does_not_exist())
    if fields.get("wecom_user_id"):
        tx.save("wecom", GuideByWecomUser(brand_pk(brand_id), f"WECOMUSER#{fields['wecom_user_id']}",
                                          guide_id=fields["guide_id"], store_id=fields["store_id"]),
                condition=GuideByWecomUser.pk.does_not_exist())
    tx.commit({"store": NotFound(f"no store {fields['store_id']} in brand {brand_id}", code="unknown_store"),
               "guide": Conflict(f"guide {fields['guide_id']} already exists", code="guide_exists"),
               "wecom": Conflict(f"WeCom user {fields.get('wecom_user_id')} is already another guide",
                                 code="wecom_user_taken")})
    return guide


def create_channel(brand_id: str, fields: dict, now: datetime, *, extra_checks=None) -> Channel:
    """Create a channel code; store, guide (and whatever `extra_checks(tx)` adds, labelled with its
    own refusal) must exist in the same transaction."""
    channel = Channel(brand_pk(brand_id), f"CHANNEL#{fields['scene']}", brand_id=brand_id,
                      created_at=now.isoformat(), **fields)
    tx = Tx()
    refusals: dict[str, Exception] = {}
    if fields.get("store_id"):
        _must_exist(tx, "store", Store, brand_id, f"STORE#{fields['store_id']}")
        refusals["store"] = NotFound(f"no store {fields['store_id']}", code="unknown_store")
    if fields.get("guide_id"):
        _must_exist(tx, "guide", Guide, brand_id, f"GUIDE#{fields['guide_id']}")
        refusals["guide"] = NotFound(f"no guide {fields['guide_id']}", code="unknown_guide")
    if extra_checks is not None:
        refusals.update(extra_checks(tx))
    tx.save("channel", channel, condition=Channel.pk.does_not_exist())
    refusals["channel"] = Conflict(f"channel code for scene {fields['scene']} already exists",
                                   code="channel_exists")
    tx.commit(refusals)
    return channel


def list_items(brand_id: str, model_cls, prefix: str) -> list:
    return list(model_cls.query(brand_pk(brand_id), Item.sk.startswith(prefix)))


def get_store(brand_id: str, store_id: str) -> Store | None:
    try:
        return Store.get(brand_pk(brand_id), f"STORE#{store_id}")
    except DoesNotExist:
        return None


def create_platform_key(key: str, now: datetime) -> None:
    """Register a platform key (bootstrap of a deployment or of the local stack); idempotent."""
    _key(key, "platform", now).save()


def principal_for_key(key: str) -> ApiKey | None:
    digest = key_hash(key)

    def load():
        try:
            return ApiKey.get(f"KEY#{digest}", "KEY")
        except DoesNotExist:
            return None
    return _keys.get_or_load(digest, load)
