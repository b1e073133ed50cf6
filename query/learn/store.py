"""The feedback store: what users did with search results, per tenant, in
``<index>/feedback.sqlite`` (SQLite in WAL mode, a file of its own so that feedback
never contends with the catalog's writer).

Every event is one transaction (``synchronous=FULL``: committed means on disk). An
event carries an ``event_id`` (the client's, or one made here); ``(tenant, event_id)``
is unique, so a client that retries a post after a timeout stores the event once.
Each thread has its own connection; concurrent writers queue on SQLite's lock
(``busy_timeout``) instead of failing.

User identifiers are never stored raw unless ``LearnConfig.store_user_ids``: they are
replaced by an HMAC-SHA256 under a random key kept in the store, so one user's events
can be grouped but the identifier cannot be read back. ``purge`` enforces the
retention limits (age and events per tenant).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from engine.errors import InputError
from query.learn.clickmodel import Session
from query.learn.config import LearnConfig
from query.learn.interleave import Tally, credit

__all__ = ["EVENT_KINDS", "Event", "FeedbackStore", "feedback_path", "query_key"]

# impression: the ranked list a search returned (recorded by the service itself);
# click, play (the moment started), dwell (seconds watched, ``value``), skip and
# not_relevant (the user passed over or rejected a result), reformulation (a new
# search replaced this one: ``payload.next_search_id`` / ``payload.query``).
EVENT_KINDS: tuple[str, ...] = ("impression", "click", "play", "dwell", "skip", "not_relevant", "reformulation")
_ON_RESULT = {"click", "play", "dwell", "skip", "not_relevant"}
MAX_POSITION = 1000
MAX_DWELL_S = 24 * 3600.0
_MAX_TEXT = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    event_id TEXT NOT NULL,
    search_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    user TEXT,
    query TEXT,
    position INTEGER,
    video_id TEXT,
    value REAL,
    payload TEXT,
    UNIQUE (tenant, event_id)
);
CREATE INDEX IF NOT EXISTS events_search ON events (tenant, search_id);
CREATE INDEX IF NOT EXISTS events_at ON events (tenant, at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def feedback_path(index_dir: str | Path) -> Path:
    return Path(index_dir) / "feedback.sqlite"


def query_key(text: str) -> str:
    """Queries that differ only in case and spacing are one query to the click model."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Event:
    """One feedback event as a client posts it (validated here, not in the route)."""

    kind: str
    search_id: str
    position: int | None = None  # 0-based position of the result in the shown list
    video_id: str | None = None
    value: float | None = None  # dwell: seconds watched
    query: str | None = None
    user: str | None = None
    event_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise InputError(f"unknown feedback event kind {self.kind!r}", hint=f"one of {list(EVENT_KINDS)}")
        if not self.search_id or len(self.search_id) > 64:
            raise InputError("a feedback event needs the search_id of the search it is about (<= 64 chars)")
        if self.kind in _ON_RESULT:
            if self.position is None or not 0 <= self.position < MAX_POSITION:
                raise InputError(f"a {self.kind} event needs the result's 0-based position (0..{MAX_POSITION - 1})")
        elif self.position is not None and not 0 <= self.position < MAX_POSITION:
            raise InputError(f"position must be in 0..{MAX_POSITION - 1}")
        if self.kind == "dwell" and (self.value is None or not math.isfinite(self.value)
                                     or not 0 <= self.value <= MAX_DWELL_S):
            raise InputError(f"a dwell event needs value: the seconds watched (0..{MAX_DWELL_S:.0f})")
        for name in ("video_id", "query", "user", "event_id"):
            v = getattr(self, name)
            if v is not None and len(v) > _MAX_TEXT:
                raise InputError(f"{name} is longer than {_MAX_TEXT} characters")


class FeedbackStore:
    """Feedback events of one index (see the module docstring)."""

    def __init__(self, path: str | Path, config: LearnConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or LearnConfig()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writes = 0
        conn = self._conn()
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('user_key', ?)", (secrets.token_hex(32),))
        self._user_key = bytes.fromhex(conn.execute("SELECT value FROM meta WHERE key='user_key'").fetchone()[0])

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            c = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA busy_timeout=30000")
            self._local.conn = c
            with self._lock:
                self._conns.append(c)
        return c

    def close(self) -> None:
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()
        self._local = threading.local()

    def user_token(self, user: str | None) -> str | None:
        if user is None or self.config.store_user_ids:
            return user
        return hmac.new(self._user_key, user.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    # -- writing -------------------------------------------------------------------------
    def record(self, tenant: str, event: Event, *, at: float | None = None) -> tuple[str, bool]:
        """Store one event in its own transaction: (its event id, False if that id was
        already stored, i.e. a retried post)."""
        if not tenant:
            raise InputError("a feedback event needs a tenant")
        eid = event.event_id or uuid.uuid4().hex
        c = self._conn()
        cur = c.execute(
            "INSERT OR IGNORE INTO events (tenant, event_id, search_id, kind, at, user, query, position, video_id,"
            " value, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (tenant, eid, event.search_id, event.kind, time.time() if at is None else at,
             self.user_token(event.user), event.query, event.position, event.video_id, event.value,
             json.dumps(dict(event.payload), separators=(",", ":")) if event.payload else None))
        stored = cur.rowcount == 1
        with self._lock:
            self._writes += 1
            due = self._writes % self.config.purge_every_writes == 0
        if due:
            self.purge()
        return eid, stored

    def record_impression(self, tenant: str, search_id: str, query: str, video_ids: list[str], *,
                          ranker: str, teams: list[str] | None = None, randomised: bool = False) -> None:
        payload: dict[str, Any] = {"hits": video_ids, "ranker": ranker}
        if teams:
            payload["teams"] = teams
        if randomised:
            payload["randomised"] = True
        self.record(tenant, Event("impression", search_id, query=query[:_MAX_TEXT], event_id=f"imp-{search_id}",
                                  payload=payload))

    def purge(self, now: float | None = None) -> int:
        """Drop events older than the retention age and the oldest beyond the per-tenant
        cap; returns how many were dropped."""
        now = time.time() if now is None else now
        c = self._conn()
        with c:
            n = c.execute("DELETE FROM events WHERE at < ?", (now - self.config.retention_days * 86400.0,)).rowcount
            for (tenant, count) in c.execute("SELECT tenant, COUNT(*) FROM events GROUP BY tenant").fetchall():
                extra = count - self.config.max_events_per_tenant
                if extra > 0:
                    n += c.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE tenant = ?"
                                   " ORDER BY seq LIMIT ?)", (tenant, extra)).rowcount
        return n

    # -- reading -------------------------------------------------------------------------
    def has_search(self, tenant: str, search_id: str) -> bool:
        """Whether this tenant's search ``search_id`` was logged (its impression)."""
        return self._conn().execute("SELECT 1 FROM events WHERE tenant = ? AND search_id = ? AND kind = 'impression'"
                                    " LIMIT 1", (tenant, search_id)).fetchone() is not None

    def count(self, tenant: str | None = None) -> dict[str, int]:
        sql, args = "SELECT kind, COUNT(*) FROM events", ()
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        return dict(self._conn().execute(sql + " GROUP BY kind", args).fetchall())

    def events(self, tenant: str | None = None) -> Iterator[dict[str, Any]]:
        sql, args = "SELECT * FROM events", ()
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        cur = self._conn().execute(sql + " ORDER BY seq", args)
        names = [d[0] for d in cur.description]
        for row in cur:
            d = dict(zip(names, row))
            d["payload"] = json.loads(d["payload"]) if d["payload"] else {}
            yield d

    def impressions(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Each logged search with what happened to its results: ``clicks`` (positions
        that count as clicks: a click, a play or a dwell of at least
        ``dwell_click_s``; a "not relevant" or skip cancels one), ``teams``,
        ``randomised``, ``ranker``."""
        shown: dict[tuple[str, str], dict[str, Any]] = {}
        acts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for e in self.events(tenant):
            key = (e["tenant"], e["search_id"])
            if e["kind"] == "impression":
                shown[key] = e
            elif e["kind"] in _ON_RESULT:
                acts.setdefault(key, []).append(e)
        out = []
        for key, imp in shown.items():
            hits = list(imp["payload"].get("hits") or [])
            yes, no = set(), set()
            for a in acts.get(key, []):
                p = a["position"]
                if p is None or p >= len(hits):
                    continue
                if a["kind"] in ("click", "play") or (a["kind"] == "dwell"
                                                     and (a["value"] or 0) >= self.config.dwell_click_s):
                    yes.add(p)
                elif a["kind"] in ("not_relevant", "skip"):
                    no.add(p)
            out.append({"tenant": key[0], "search_id": key[1], "query": imp["query"] or "", "hits": hits,
                        "clicks": sorted(yes - no), "teams": imp["payload"].get("teams"),
                        "randomised": bool(imp["payload"].get("randomised")),
                        "ranker": imp["payload"].get("ranker"), "at": imp["at"]})
        return out

    def sessions(self, tenant: str | None = None) -> list[Session]:
        """The impressions as click-model sessions (query key: tenant and query)."""
        out = []
        for imp in self.impressions(tenant):
            clicks = set(imp["clicks"])
            out.append(Session((imp["tenant"], query_key(imp["query"])), tuple(imp["hits"]),
                               tuple(i in clicks for i in range(len(imp["hits"])))))
        return out

    def interleaving(self, tenant: str | None = None) -> dict[str, Tally]:
        """Per pair of rankers ("A-version vs B-version"), the wins of each in the
        interleaved searches logged."""
        out: dict[str, Tally] = {}
        for imp in self.impressions(tenant):
            if not imp["teams"]:
                continue
            out.setdefault(str(imp["ranker"]), Tally()).add(credit(imp["teams"], imp["clicks"]))
        return out
