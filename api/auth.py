"""API keys, tenants, scopes, signed media links and per-key rate limits.

Keys live in ``DIR/service.sqlite`` beside the index (table ``api_keys``). A key is
``vsk_<key_id>_<secret>``: ``key_id`` is public (it names the key in logs and in
``list``), the secret is 32 random bytes and only its salted SHA-256 is stored. A
salted fast hash is enough here because the secret has 256 bits of entropy: there is
nothing to brute-force, unlike a password, and a per-request scrypt would cost tens
of milliseconds on every search.

Scopes: ``search`` (read: search, videos, segments, thumbnails, media), ``ingest``
(write: ingest, jobs, delete, metadata updates) and ``admin`` (every scope of its
tenant plus ``/metrics``, which shows counts over all tenants). A key never crosses
tenants, whatever its scopes.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputError, NotFoundError

__all__ = [
    "SCOPES",
    "ApiKey",
    "Principal",
    "KeyStore",
    "RateLimiter",
    "LinkSigner",
    "validate_tenant",
    "parse_scopes",
    "service_db_path",
]

SCOPES: tuple[str, ...] = ("search", "ingest", "admin")
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_RE = re.compile(r"^vsk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def service_db_path(index_dir: str | Path) -> Path:
    """The service database (keys, jobs, link secret) of an index directory."""
    return Path(index_dir) / "service.sqlite"


def validate_tenant(tenant: str) -> str:
    """Tenant names end up in folder names (uploads/<tenant>/), so keep them plain."""
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise InputError(
            f"tenant {tenant!r} is not a valid tenant name",
            hint="use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return tenant


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"search,ingest"`` -> ("search", "ingest"); unknown names raise InputError."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = tuple(sorted({s.strip() for s in items if s.strip()}))
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise InputError(f"unknown or empty scopes {bad or list(items)!r}", hint=f"pick from {list(SCOPES)}")
    return scopes


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret)."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    name: str | None
    created_at: float
    revoked_at: float | None = None

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "tenant": self.tenant, "scopes": list(self.scopes), "name": self.name,
                "created_at": self.created_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant and its scopes. ``key_id`` is None in local mode and
    for signed media links. ``owner``: the index's own user through the server's owner
    token (``api.discovery``): path ingest reads any file the server can read."""

    tenant: str
    scopes: frozenset[str] = field(default_factory=lambda: frozenset(SCOPES))
    key_id: str | None = None
    owner: bool = False

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    scopes TEXT NOT NULL,
    name TEXT,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS service_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


class KeyStore:
    """API keys in the service database. Thread-safe (one connection, a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, tenant: str, scopes: str | list[str] | tuple[str, ...], *,
               name: str | None = None) -> tuple[str, ApiKey]:
        """A new key; returns (the full key, shown once, and its record)."""
        validate_tenant(tenant)
        sc = parse_scopes(scopes)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (key_id, tenant, scopes, name, salt, hash, created_at) VALUES (?,?,?,?,?,?,?)",
                (key_id, tenant, ",".join(sc), name, salt, _digest(salt, secret), now),
            )
        return f"vsk_{key_id}_{secret}", ApiKey(key_id, tenant, sc, name, now)

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
            )
        if cur.rowcount == 0:
            raise NotFoundError(f"no active key with id {key_id!r}", hint="`python -m api.keys list --index DIR`")
        return self.get(key_id)

    def get(self, key_id: str) -> ApiKey:
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id, tenant, scopes, name, created_at, revoked_at FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        return ApiKey(row[0], row[1], tuple(row[2].split(",")), row[3], row[4], row[5])

    def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        sql = "SELECT key_id, tenant, scopes, name, created_at, revoked_at FROM api_keys"
        args: tuple = ()
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at", args).fetchall()
        return [ApiKey(r[0], r[1], tuple(r[2].split(",")), r[3], r[4], r[5]) for r in rows]

    def active_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])

    def verify(self, token: str) -> ApiKey | None:
        """The active key that ``token`` is, or None (malformed, unknown, wrong or revoked)."""
        m = _KEY_RE.match(token or "")
        if m is None:
            return None
        key_id, secret = m.groups()
        with self._lock:
            row = self._conn.execute(
                "SELECT salt, hash, revoked_at FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        if row is None or row[2] is not None or not hmac.compare_digest(_digest(row[0], secret), row[1]):
            return None
        return self.get(key_id)

    def secret(self, name: str) -> bytes:
        """A random server secret kept in the database (made on first use)."""
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO service_secrets (name, value) VALUES (?, ?)",
                               (name, secrets.token_bytes(32)))
            return bytes(self._conn.execute("SELECT value FROM service_secrets WHERE name = ?", (name,)).fetchone()[0])


class LinkSigner:
    """Short-lived signed URLs for thumbnails and media.

    A ``<video>`` or ``<img>`` element cannot send an Authorization header, so search
    results carry links with ``?t=EXPIRY.MAC``, where MAC binds tenant, video and
    expiry. The link grants read access to that one video of that one tenant.
    """

    def __init__(self, secret: bytes, ttl_s: float = 3600.0) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, tenant: str, video_id: str, exp: int) -> str:
        return hmac.new(self._secret, f"{tenant}|{video_id}|{exp}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, tenant: str, video_id: str, *, now: float | None = None) -> str:
        exp = int((now or time.time()) + self.ttl_s)
        return f"{exp}.{self._mac(tenant, video_id, exp)}"

    def verify(self, token: str, video_id: str, tenant: str, *, now: float | None = None) -> bool:
        exp_s, _, mac = (token or "").partition(".")
        if not exp_s.isdigit() or int(exp_s) < (now or time.time()):
            return False
        return hmac.compare_digest(mac, self._mac(tenant, video_id, int(exp_s)))


class RateLimiter:
    """A token bucket per key, in memory: ``rate`` requests a second on average, bursts
    of up to ``burst``. ``rate <= 0`` disables it. ``allow`` and ``state`` take an
    optional ``rate`` that overrides the one given here (the service passes the rate
    that applies now: none in local mode unless asked for, see ``Settings.rate_for``)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = float(rate or 0.0)
        self.burst = max(1.0, float(burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, *, now: float | None = None, rate: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next token when not)."""
        r = self.rate if rate is None else float(rate)
        if r <= 0:
            return True, 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * r)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, t)
                return True, 0.0
            self._buckets[key] = (tokens, t)
            return False, (1.0 - tokens) / r

    def state(self, key: str, *, now: float | None = None, rate: float | None = None) -> dict[str, float] | None:
        """What the rate-limit headers say about ``key``'s bucket, without taking a token:
        ``limit`` (the burst), ``remaining`` (whole requests left now), ``reset``
        (seconds until the bucket is full again) and ``rate``; None when there is no limit."""
        r = self.rate if rate is None else float(rate)
        if r <= 0:
            return None
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * r)
        return {"limit": self.burst, "remaining": float(int(tokens)), "reset": (self.burst - tokens) / r, "rate": r}
