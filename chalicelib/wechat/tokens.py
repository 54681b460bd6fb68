"""One access token per brand's WeChat app, shared by every Lambda container (the client's `TokenSource`).

WeChat gives an app a limited number of token fetches a day, and with `cgi-bin/token` each fetch
invalidates the token other containers hold. So the token lives in one DynamoDB item, keyed by
brand, app kind and app id (`token_key`): a brand that registered another brand's app id with a
wrong secret never reads the other brand's token, it must fetch its own (and WeChat refuses it).

- `get()` answers from memory while the token is fresh, else from the item; when the item has no
  usable token, one container takes a short conditional lease and refreshes through
  `stable_token`, and the others wait for the item to change instead of calling WeChat themselves.
  The lease is granted only if the item still holds what the container read (no token, or the
  same unusable one): a container that read "no token" just before another one stored a fresh
  token loses the lease and reads the fresh token instead of fetching a second time;
- `expire(token)` is compare-and-expire: it removes the token only if it is still the one that
  failed, so a container that saw 40001 late never throws away the fresh token another one put.

AWS cost: a warm container makes no request per call; a cold one reads the item once.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from chalicelib.wechat.client import WeChatError

MARGIN = 300            # refresh this long before WeChat says the token expires
LEASE_SECONDS = 10      # longer than a token fetch may take (its HTTP timeout is 4 s)
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class TokenRecord:
    token: str | None
    valid_until: float
    lease_owner: str | None
    lease_until: float


def token_key(brand_id: str, kind: str, app_id: str) -> str:
    """The shared item's key: one token per brand and app, never per app id alone."""
    return f"{brand_id}#{kind}#{app_id}"


class TokenStore(Protocol):
    """`key` is `token_key(...)`. `take_lease` succeeds only when no live lease is held and the token
    is still `seen_token` (None: still no token) with `seen_valid_until`, i.e. what the caller read."""

    def read(self, key: str) -> TokenRecord | None: ...

    def take_lease(self, key: str, owner: str, until: float, now: float, seen_token: str | None = None,
                   seen_valid_until: float | None = None) -> bool: ...

    def put(self, key: str, owner: str, token: str, valid_until: float) -> bool: ...

    def release(self, key: str, owner: str) -> bool: ...

    def expire(self, key: str, token: str) -> bool: ...


class DynamoTokenStore:
    """The shared item, `WXTOKEN#<brand_id>#<kind>#<app_id>`; every change is one conditional UpdateItem."""

    def _item(self, key: str):
        from chalicelib.storage.models import WeChatToken
        return WeChatToken(f"WXTOKEN#{key}", "TOKEN")

    def read(self, key: str) -> TokenRecord | None:
        from pynamodb.exceptions import DoesNotExist
        from chalicelib.storage.models import WeChatToken
        try:
            item = WeChatToken.get(f"WXTOKEN#{key}", "TOKEN", consistent_read=True)
        except DoesNotExist:
            return None
        return TokenRecord(item.token, float(item.valid_until or 0), item.lease_owner, float(item.lease_until or 0))

    def _update(self, key: str, actions: list, condition) -> bool:
        from pynamodb.exceptions import UpdateError
        try:
            self._item(key).update(actions=actions, condition=condition)
            return True
        except UpdateError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def take_lease(self, key: str, owner: str, until: float, now: float, seen_token: str | None = None,
                   seen_valid_until: float | None = None) -> bool:
        from chalicelib.storage.models import WeChatToken as T
        unchanged = (T.token.does_not_exist() if seen_token is None
                     else (T.token == seen_token) & (T.valid_until == seen_valid_until))
        return self._update(key, [T.kind.set(T), T.lease_owner.set(owner), T.lease_until.set(until)],
                            (T.lease_until.does_not_exist() | (T.lease_until < now)) & unchanged)

    def put(self, key: str, owner: str, token: str, valid_until: float) -> bool:
        from chalicelib.storage.models import WeChatToken as T
        return self._update(key, [T.token.set(token), T.valid_until.set(valid_until), T.lease_until.set(0),
                                  T.refreshed_at.set(datetime.now(timezone.utc).isoformat())],
                            T.lease_owner == owner)

    def release(self, key: str, owner: str) -> bool:
        from chalicelib.storage.models import WeChatToken as T
        return self._update(key, [T.lease_until.set(0)], T.lease_owner == owner)

    def expire(self, key: str, token: str) -> bool:
        from chalicelib.storage.models import WeChatToken as T
        return self._update(key, [T.token.remove(), T.valid_until.remove()], T.token == token)


class TokenUnavailable(WeChatError):
    """No token could be had within the wait (another container's refresh hung): transient, like -1."""

    def __init__(self, key: str):
        super().__init__(-1, f"no access token for {key} after waiting for another refresher", "token")


class SharedTokenSource:
    """`TokenSource` over a `TokenStore`; `fetch(force_refresh) -> (token, expires_in)` calls WeChat.
    `key` names the shared item (`token_key(brand_id, kind, app_id)`)."""

    def __init__(self, key: str, fetch: Callable[[bool], tuple[str, int]], store: TokenStore | None = None, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 margin: float = MARGIN, lease_seconds: float = LEASE_SECONDS, poll: float = POLL_SECONDS):
        self.key = key
        self._fetch, self._store = fetch, store or DynamoTokenStore()
        self._clock, self._sleep = clock, sleep
        self._margin, self._lease, self._poll = margin, lease_seconds, poll
        self._owner = secrets.token_hex(8)           # this container, as lease holder
        self._token: str | None = None
        self._valid_until = 0.0
        self._bad: list[str] = []                    # tokens WeChat refused here lately
        self._state = threading.Lock()
        self._refresh = threading.Lock()             # one thread per container goes to the store

    def _fresh(self, token: str | None, valid_until: float) -> bool:
        return bool(token) and token not in self._bad and self._clock() < valid_until - self._margin

    def get(self) -> str:
        with self._state:
            if self._fresh(self._token, self._valid_until):
                return self._token
        with self._refresh:
            with self._state:                        # another thread may have refreshed meanwhile
                if self._fresh(self._token, self._valid_until):
                    return self._token
            token, valid_until = self._from_store()
            with self._state:
                self._token, self._valid_until = token, valid_until
            return token

    def _from_store(self) -> tuple[str, float]:
        give_up = self._clock() + 2 * self._lease + 2
        while True:
            now = self._clock()
            record = self._store.read(self.key)
            if record is not None and self._fresh(record.token, record.valid_until):
                return record.token, record.valid_until
            seen = record.token if record is not None else None
            # the lease only if the item still holds what we read: a token stored since then is taken
            # on the next read instead of being fetched a second time
            if self._store.take_lease(self.key, self._owner, now + self._lease, now, seen,
                                      record.valid_until if seen is not None else None):
                return self._refresh_now()
            if now > give_up:
                raise TokenUnavailable(self.key)
            self._sleep(self._poll)

    def _refresh_now(self) -> tuple[str, float]:
        try:
            token, expires_in = self._fetch(False)
            if token in self._bad:
                # stable_token hands back the current token while WeChat thinks it valid; this one was
                # refused, so ask for a new one (force_refresh is rationed by WeChat: only here)
                token, expires_in = self._fetch(True)
        except BaseException:
            # a slow or refusing WeChat: hand the lease back now, so the next caller (here or in
            # another container) tries again at once instead of waiting the lease out
            try:
                self._store.release(self.key, self._owner)
            except Exception:  # noqa: BLE001 - the fetch's failure is the one to report; the lease expires anyway
                pass
            raise
        valid_until = self._clock() + int(expires_in)
        if not self._store.put(self.key, self._owner, token, valid_until):
            # the fetch outlasted our lease and another container took over: use what it stored
            record = self._store.read(self.key)
            if record is not None and self._fresh(record.token, record.valid_until):
                return record.token, record.valid_until
        return token, valid_until

    def expire(self, token: str) -> None:
        with self._state:
            if self._token == token:
                self._token = None
            if token not in self._bad:
                self._bad = (self._bad + [token])[-8:]
        self._store.expire(self.key, token)


class MemoryTokenStore:
    """The store's semantics in memory (unit tests; a single-process tool)."""

    def __init__(self) -> None:
        self._items: dict[str, dict] = {}
        self._lock = threading.Lock()

    def read(self, key: str) -> TokenRecord | None:
        with self._lock:
            item = self._items.get(key)
            return None if item is None else TokenRecord(item.get("token"), item.get("valid_until", 0),
                                                         item.get("lease_owner"), item.get("lease_until", 0))

    def take_lease(self, key: str, owner: str, until: float, now: float, seen_token: str | None = None,
                   seen_valid_until: float | None = None) -> bool:
        with self._lock:
            item = self._items.setdefault(key, {})
            if item.get("lease_until") is not None and item["lease_until"] >= now:
                return False
            if item.get("token") != seen_token or (seen_token is not None
                                                   and item.get("valid_until") != seen_valid_until):
                return False
            item.update(lease_owner=owner, lease_until=until)
            return True

    def put(self, key: str, owner: str, token: str, valid_until: float) -> bool:
        with self._lock:
            item = self._items.setdefault(key, {})
            if item.get("lease_owner") != owner:
                return False
            item.update(token=token, valid_until=valid_until, lease_until=0)
            return True

    def release(self, key: str, owner: str) -> bool:
        with self._lock:
            item = self._items.get(key)
            if not item or item.get("lease_owner") != owner:
                return False
            item["lease_until"] = 0
            return True

    def expire(self, key: str, token: str) -> bool:
        with self._lock:
            item = self._items.get(key)
            if not item or item.get("token") != token:
                return False
            item.pop("token", None)
            item.pop("valid_until", None)
            return True
