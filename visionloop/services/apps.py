"""Apps and API keys: keys are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, bindparam, select

from visionloop import errors
from visionloop.ids import is_valid_client_id, new_id
from visionloop.services.short_cache import ShortCache
from visionloop.store.db import Database
from visionloop.store.tables import ApiKey, App, utcnow

SCOPES: tuple[str, ...] = ("inputs", "concepts", "models", "predict", "search", "feedback", "feedback_admin")

# Every request: built once, and plain columns (no ORM objects to build) on a bare connection.
_KEY_COLUMNS = select(ApiKey.app_id, ApiKey.id, ApiKey.scopes, ApiKey.monthly_limit, ApiKey.revoked_at)
_KEY_BY_HASH = _KEY_COLUMNS.where(ApiKey.key_hash == bindparam("key_hash"))
_KEY_BY_ID = _KEY_COLUMNS.where(ApiKey.id == bindparam("key_id"))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Secret(str):
    """A credential that never shows itself in reprs or logs."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: the app the key belongs to, the key's id and its scopes."""

    app_id: str
    key_id: str
    scopes: frozenset[str]
    monthly_limit: int | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise errors.InsufficientScopes(f"this API key lacks the '{scope}' scope")


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    id: str
    app_id: str
    scopes: list[str]
    description: str
    created_at: dt.datetime
    revoked: bool


class AppService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._callers: ShortCache[Caller] = ShortCache()

    def create_app(self, app_id: str, name: str | None = None) -> App:
        if not is_valid_client_id(app_id):
            raise errors.InvalidRequest(f"app id {app_id!r} must be 1-64 letters, digits, '_', '.', ':' or '-'")
        if name is not None and (len(name) > 255 or "\x00" in name):
            raise errors.InvalidRequest("an app name has at most 255 characters and no NUL")
        with self.db.transaction() as s:
            if s.get(App, app_id) is not None:
                raise errors.InvalidRequest(f"app {app_id!r} already exists")
            app = App(id=app_id, name=name or app_id)
            s.add(app)
        return app

    def get_app(self, app_id: str) -> App:
        with self.db.session() as s:
            app = s.get(App, app_id) if is_valid_client_id(app_id) else None
        if app is None:
            raise errors.AppNotFound(f"app {app_id!r} does not exist")
        return app

    def list_apps(self) -> list[App]:
        with self.db.session() as s:
            return list(s.scalars(select(App).order_by(App.created_at, App.id)))

    def create_key(self, app_id: str, scopes: Iterable[str] = SCOPES, description: str = "",
                   monthly_limit: int | None = None) -> tuple[KeyInfo, Secret]:
        """Create a key; the secret is returned once and only its hash is stored."""
        scopes = sorted(set(scopes))
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise errors.InvalidRequest(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
        if monthly_limit is not None and not 0 <= monthly_limit <= 2**31 - 1:  # an INTEGER column
            raise errors.InvalidRequest(f"monthly limit must be from 0 to {2**31 - 1}, got {monthly_limit}")
        if len(description) > 255 or "\x00" in description:
            raise errors.InvalidRequest("a key description has at most 255 characters and no NUL")
        secret = Secret(secrets.token_hex(16))
        with self.db.transaction() as s:
            if s.get(App, app_id) is None:
                raise errors.AppNotFound(f"app {app_id!r} does not exist")
            row = ApiKey(id=new_id()[:12], app_id=app_id, key_hash=hash_key(secret), scopes=scopes,
                         description=description, monthly_limit=monthly_limit)
            s.add(row)
        return self._info(row), secret

    def list_keys(self, app_id: str | None = None) -> list[KeyInfo]:
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.created_at)
            if app_id:
                q = q.where(ApiKey.app_id == app_id)
            return [self._info(k) for k in s.scalars(q)]

    def revoke_key(self, key_id: str) -> None:
        with self.db.transaction() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise errors.KeyInvalid(f"no key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        self._callers.clear()

    def has_keys(self) -> bool:
        with self.db.session() as s:
            return s.scalar(select(ApiKey.id).limit(1)) is not None

    def authenticate(self, key: str) -> Caller:
        """Map a presented key to its caller; unknown keys and keys revoked in this process are
        refused at once, keys revoked by another process within a second
        (:mod:`visionloop.services.short_cache`)."""
        key_hash = hash_key(key)
        return self._callers.get(key_hash, lambda: self._caller(key_hash))

    def recent_caller(self, key: str) -> Caller | None:
        """The key's caller if authenticated within the last second (no I/O), else None."""
        return self._callers.peek(hash_key(key))

    def caller_of_key(self, key_id: str) -> Caller:
        """The caller of a key named by its id (a console session names its key, never the secret):
        a key revoked or deleted since ends every session signed in with it, as it ends API calls."""
        return self._callers.get(("id", key_id), lambda: self._caller(key_id, _KEY_BY_ID, "key_id"))

    def _caller(self, value: str, query: Select[Any] = _KEY_BY_HASH, name: str = "key_hash") -> Caller:
        with self.db.reading() as c:
            row = c.execute(query, {name: value}).first()
        if row is None:
            raise errors.KeyNotFound("no app has this API key")
        if row.revoked_at is not None:
            raise errors.KeyInvalid("the API key was revoked")
        return Caller(app_id=row.app_id, key_id=row.id, scopes=frozenset(row.scopes),
                      monthly_limit=row.monthly_limit)

    @staticmethod
    def _info(row: ApiKey) -> KeyInfo:
        return KeyInfo(id=row.id, app_id=row.app_id, scopes=list(row.scopes), description=row.description,
                       created_at=row.created_at, revoked=row.revoked_at is not None)
