"""SQLite catalog of videos, shots, segments, keyframes and per-modality vectors.

The catalog is the source of truth of an index directory. Every change is one
SQLite transaction that also appends a row to the ``ops`` log; that commit is the
commit point of an ingest or a delete. The vector and lexical indexes are derived
state that remember the last ``ops.seq`` they reflect and replay the rest
(``engine.index``), so a crash between the catalog commit and their save loses
nothing and never shows half a video.

Per-modality vectors are held here only until the vector store has saved them
(``engine.catalog.schema_vectors``): the store is their one copy, read back through
``vector_source``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from engine.catalog import identities as _identities
from engine.catalog import labels as _labels
from engine.catalog.identities import FaceTrack
from engine.catalog.labels import FaceRecord, FrameLabel
from engine.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from engine.catalog.schema_vectors import VECTORS_TABLE
from engine.catalog.schema_graph import GC_ORPHAN_ENTITIES
from engine.errors import CorruptIndexError, IndexMismatchError, NotFoundError

__all__ = [
    "Catalog",
    "NewVideo",
    "NewSegment",
    "VideoRecord",
    "SegmentRecord",
    "Op",
    "Failure",
    "MODALITIES",
    "TimelineUnit",
    "make_video_id",
]

_log = logging.getLogger(__name__)
# A prune of more ops than this at once copies the rows to keep instead of deleting the rest.
BULK_PRUNE_OPS = 1000

# The modalities of a segment, in the joint vector's block order: the one definition
# (engine.catalog.MODALITIES), imported by the index config, the index, intents and the planner.
MODALITIES: tuple[str, ...] = ("visual", "speech", "ocr", "metadata")


def make_video_id(tenant: str, content_hash: str) -> str:
    """Stable public id: the same bytes in the same tenant always get the same id."""
    return "v" + hashlib.sha256(f"{tenant}\0{content_hash}".encode()).hexdigest()[:15]


def _f32(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


@dataclass
class NewSegment:
    """A segment to insert. ``vectors`` maps modality -> float32 (dim,) unit vector;
    a missing modality is simply absent. ``keyframes`` holds (t, labels, visual vector
    or None) per keyframe."""

    start: float
    end: float
    shot_index: int = 0
    transcript: str = ""
    words: list = field(default_factory=list)
    ocr_text: str = ""
    labels: list = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    keyframes: list[tuple[float, list, np.ndarray | None]] = field(default_factory=list)
    # its best keyframe as a small JPEG; not stored in the catalog: the indexer writes it
    # beside it after the commit (indexer.thumbs.ThumbStore)
    thumbnail: bytes | None = None


@dataclass(frozen=True)
class TimelineUnit:
    """One piece of fine-grained evidence (schema_timeline): a spoken ``phrase``, an
    on-screen ``text`` span or a ``visual`` sample, with its time range, text and unit
    vector (float32 in memory, float16 on disk; None when it has none)."""

    kind: str
    start: float
    end: float
    text: str = ""
    vector: np.ndarray | None = None


@dataclass
class NewVideo:
    """A video to insert, with everything the indexer found."""

    source: str
    content_hash: str
    tenant: str = "default"
    size_bytes: int | None = None
    mtime: float | None = None
    title: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    has_audio: bool = False
    language: str | None = None
    language_prob: float | None = None
    stats: dict = field(default_factory=dict)
    shots: list[tuple[float, float]] = field(default_factory=list)
    segments: list[NewSegment] = field(default_factory=list)
    timeline: list[TimelineUnit] = field(default_factory=list)
    labels: list[FrameLabel] = field(default_factory=list)  # segment = index into ``segments``
    faces: list[FaceRecord] = field(default_factory=list)
    face_tracks: list[FaceTrack] = field(default_factory=list)  # segment = index into ``segments``
    # the public id to keep (a finalised live video keeps the id it had while live);
    # None: derived from tenant and content hash (``make_video_id``)
    video_id: str | None = None


@dataclass(frozen=True)
class VideoRecord:
    key: int  # internal integer id (shard key)
    video_id: str
    tenant: str
    source: str
    content_hash: str
    size_bytes: int | None
    mtime: float | None
    title: str | None
    description: str | None
    tags: list
    people: list
    extra: dict
    duration: float | None
    width: int | None
    height: int | None
    fps: float | None
    container: str | None
    video_codec: str | None
    audio_codec: str | None
    has_audio: bool
    language: str | None
    language_prob: float | None
    status: str
    stats: dict
    created_at: float
    updated_at: float
    num_segments: int = 0

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "key"}
        return d


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    video: int
    idx: int
    start: float
    end: float
    transcript: str
    words: list
    ocr_text: str
    labels: list
    shot: int | None = None
    keyframe_times: tuple[float, ...] = ()


@dataclass(frozen=True)
class Op:
    seq: int
    op: str
    video: int
    segment_ids: np.ndarray


@dataclass(frozen=True)
class Failure:
    tenant: str
    source: str
    code: str
    reason: str
    at: float


_VIDEO_COLS = (
    "id, video_id, tenant, source, content_hash, size_bytes, mtime, title, description, "
    "tags, people, extra, duration, width, height, fps, container, video_codec, audio_codec, "
    "has_audio, language, language_prob, status, stats, created_at, updated_at"
)


def _json_field(text: str | None, empty: list | dict) -> list | dict:
    """Decode a JSON column; the common empty values skip the decoder (a search decodes
    the rows of a hundred videos, so this is measurable)."""
    if not text or text == "[]" or text == "{}":
        return type(empty)()
    return json.loads(text)


def _video_from_row(row: sqlite3.Row, num_segments: int = 0) -> VideoRecord:
    return VideoRecord(
        key=row["id"],
        video_id=row["video_id"],
        tenant=row["tenant"],
        source=row["source"],
        content_hash=row["content_hash"],
        size_bytes=row["size_bytes"],
        mtime=row["mtime"],
        title=row["title"],
        description=row["description"],
        tags=_json_field(row["tags"], []),
        people=_json_field(row["people"], []),
        extra=_json_field(row["extra"], {}),
        duration=row["duration"],
        width=row["width"],
        height=row["height"],
        fps=row["fps"],
        container=row["container"],
        video_codec=row["video_codec"],
        audio_codec=row["audio_codec"],
        has_audio=bool(row["has_audio"]),
        language=row["language"],
        language_prob=row["language_prob"],
        status=row["status"],
        stats=_json_field(row["stats"], {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        num_segments=num_segments,
    )


def _status(video: NewVideo) -> str:
    """A new video's status: ``live`` while a live stream is still being indexed
    (``stats["live"]`` not finalised, see indexer.live), ``damaged``, else ``indexed``."""
    live = video.stats.get("live")
    if isinstance(live, dict) and not live.get("finalised"):
        return "live"
    return "damaged" if video.stats.get("damage") else "indexed"


def _insert_video_row(c: sqlite3.Connection, video: NewVideo, now: float) -> int:
    """Insert the ``videos`` row of a new video; its key."""
    cur = c.execute(
        "INSERT INTO videos (video_id, tenant, source, content_hash, size_bytes, mtime, title,"
        " description, tags, people, extra, duration, width, height, fps, container, video_codec,"
        " audio_codec, has_audio, language, language_prob, status, stats, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            video.video_id or make_video_id(video.tenant, video.content_hash), video.tenant, video.source,
            video.content_hash,
            video.size_bytes, video.mtime, video.title, video.description,
            json.dumps(video.tags, ensure_ascii=False), json.dumps(video.people, ensure_ascii=False),
            json.dumps(video.extra, ensure_ascii=False, default=str), video.duration, video.width,
            video.height, video.fps, video.container, video.video_codec, video.audio_codec,
            int(video.has_audio), video.language, video.language_prob,
            _status(video),
            json.dumps(video.stats, default=str), now, now,
        ),
    )
    return int(cur.lastrowid)


def _insert_segment(c: sqlite3.Connection, key: int, idx: int, seg: NewSegment, shot: int | None) -> int:
    """Insert segment ``idx`` of video ``key`` with its vectors and keyframes; its id."""
    sid = int(c.execute(
        "INSERT INTO segments (video, shot, idx, start, end, transcript, words, ocr_text, labels)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            key, shot, idx, seg.start, seg.end, seg.transcript,
            json.dumps(seg.words, ensure_ascii=False), seg.ocr_text,
            json.dumps(seg.labels, ensure_ascii=False),
        ),
    ).lastrowid)
    for modality, vec in seg.vectors.items():
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        c.execute(
            "INSERT INTO vectors (segment, modality, data) VALUES (?,?,?)",
            (sid, modality, np.ascontiguousarray(vec, dtype=np.float32).tobytes()),
        )
    for t, labels, kvec in seg.keyframes:
        c.execute(
            "INSERT INTO keyframes (segment, t, labels, vector) VALUES (?,?,?,?)",
            (
                sid, float(t), json.dumps(labels, ensure_ascii=False),
                None if kvec is None else np.ascontiguousarray(kvec, dtype=np.float32).tobytes(),
            ),
        )
    return sid


def _write_faces(c: sqlite3.Connection, key: int, tenant: str, seg_ids: Sequence[int], video: NewVideo) -> None:
    """A video's (or a live window's) faces and face tracks; the tracks join the
    tenant's identities. With face identity off no descriptor is stored."""
    enabled = _identities.identity_enabled(c)
    faces = video.faces if enabled else [replace(f, descriptor=None) for f in video.faces]
    before = int(c.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0])
    _labels.insert_faces(c, key, seg_ids, faces)
    if not video.face_tracks:
        return
    rows = c.execute("SELECT id, t, box FROM faces WHERE video = ? AND id > ? ORDER BY id", (key, before)).fetchall()
    face_ids = {(round(float(t), 4), tuple(round(float(b), 4) for b in json.loads(box))): int(i) for i, t, box in rows}
    touched = _identities.insert_tracks(c, key, tenant, seg_ids, video.face_tracks, face_ids, video.people)
    _identities.refresh(c, touched, recompute=False)  # assign kept the centroids current


def _insert_timeline(c: sqlite3.Connection, key: int, units: Sequence[TimelineUnit]) -> None:
    c.executemany(
        "INSERT INTO timeline (video, kind, start, end, text, vector) VALUES (?,?,?,?,?,?)",
        [(key, u.kind, float(u.start), float(u.end), u.text,
          None if u.vector is None else np.ascontiguousarray(u.vector, dtype=np.float16).tobytes())
         for u in units],
    )


class Catalog:
    """One SQLite database in WAL mode. Thread-safe: one connection per thread.

    Writers serialise through ``BEGIN IMMEDIATE``; readers never block writers (WAL).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        # Where rows pruned from ``vectors`` are read back (the index's vector store):
        # callable(segment_ids, modalities) -> {modality: {segment: unit vector}}.
        self.vector_source: Callable[[list[int], list[str]], dict[str, dict[int, np.ndarray]]] | None = None
        self._local = threading.local()
        if read_only and not self.path.exists():
            raise NotFoundError(
                f"catalog {self.path} does not exist", hint="build the index with `vidseek index` first"
            )
        conn = self._conn()
        if not read_only:
            self._migrate(conn)
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise IndexMismatchError(
                    f"catalog {self.path} has schema version {version}, this vidseek reads {SCHEMA_VERSION}",
                    hint="open it once with a writer (e.g. `vidseek index`) to migrate it",
                )

    # -- connections -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                if self.read_only:
                    conn = sqlite3.connect(
                        f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None,
                        check_same_thread=False,
                    )
                else:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(
                        self.path, timeout=30, isolation_level=None, check_same_thread=False
                    )
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=FULL")
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.DatabaseError as e:
                raise CorruptIndexError(
                    f"catalog {self.path} cannot be opened: {e}",
                    hint="restore the index folder from a backup or rebuild it",
                ) from e
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise CorruptIndexError(f"catalog {self.path} is not a SQLite database: {e}") from e
        if version > SCHEMA_VERSION:
            raise IndexMismatchError(
                f"catalog {self.path} has schema version {version}, newer than this vidseek ({SCHEMA_VERSION})",
                hint="upgrade vidseek",
            )
        for v in range(version, SCHEMA_VERSION):
            with self.transaction() as c:
                for stmt in _split_sql(MIGRATIONS[v]):
                    c.execute(stmt)
                c.execute(f"PRAGMA user_version = {v + 1}")

    # -- writes ------------------------------------------------------------------------
    def add_video(self, video: NewVideo, *, replace_keys: Sequence[int] = ()) -> tuple[int, list[int], int]:
        """Insert a whole video in one transaction, after deleting ``replace_keys``
        (the old version of a changed file) in the same transaction.

        Returns (video key, segment ids in order, op seq of the add).
        """
        now = time.time()
        with self.transaction() as c:
            for key in replace_keys:
                self._delete_in_txn(c, key, now)
            key = _insert_video_row(c, video, now)
            shot_ids = [
                int(c.execute("INSERT INTO shots (video, idx, start, end) VALUES (?,?,?,?)", (key, i, s, e)).lastrowid)
                for i, (s, e) in enumerate(video.shots)
            ]
            seg_ids: list[int] = []
            for i, seg in enumerate(video.segments):
                shot = shot_ids[seg.shot_index] if 0 <= seg.shot_index < len(shot_ids) else None
                seg_ids.append(_insert_segment(c, key, i, seg, shot))
            _insert_timeline(c, key, video.timeline)
            _labels.insert_labels(c, key, seg_ids, video.labels)
            _write_faces(c, key, video.tenant, seg_ids, video)
            c.execute("DELETE FROM failures WHERE tenant = ? AND source = ?", (video.tenant, video.source))
            seq = int(c.execute(
                "INSERT INTO ops (op, video, segments, created_at) VALUES ('add', ?, ?, ?)",
                (key, np.asarray(seg_ids, dtype=np.int64).tobytes(), now),
            ).lastrowid)
        return key, seg_ids, seq

    def append_segments(self, key: int, part: NewVideo, *, stats: dict, status: str = "live"
                        ) -> tuple[list[int], int]:
        """Add ``part``'s shots, segments, timeline, frame labels and faces to the existing video ``key`` in one
        transaction (a live window), set its duration, stats and status, and log an
        ``add`` op for the new segments only, so derived indexes replay just them.
        ``part.segments[i].shot_index`` indexes ``part.shots``. Returns (segment ids, op seq).
        Raises NotFoundError when the video is gone."""
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT (SELECT COUNT(*) FROM segments WHERE video = ?) AS n FROM videos WHERE id = ?",
                            (key, key)).fetchone()
            if row is None:
                raise NotFoundError(f"video key {key} does not exist", hint="start the live video again")
            first = int(row["n"])
            n_shots = int(c.execute("SELECT COUNT(*) FROM shots WHERE video = ?", (key,)).fetchone()[0])
            shot_ids = [
                int(c.execute("INSERT INTO shots (video, idx, start, end) VALUES (?,?,?,?)",
                              (key, n_shots + i, s, e)).lastrowid)
                for i, (s, e) in enumerate(part.shots)
            ]
            seg_ids = [
                _insert_segment(c, key, first + i, seg,
                                shot_ids[seg.shot_index] if 0 <= seg.shot_index < len(shot_ids) else None)
                for i, seg in enumerate(part.segments)
            ]
            _insert_timeline(c, key, part.timeline)
            _labels.insert_labels(c, key, seg_ids, part.labels)  # a window's frame labels and faces too
            tenant = c.execute("SELECT tenant FROM videos WHERE id = ?", (key,)).fetchone()[0]
            _write_faces(c, key, tenant, seg_ids, part)
            c.execute("UPDATE videos SET duration = ?, stats = ?, status = ?, updated_at = ? WHERE id = ?",
                      (part.duration, json.dumps(stats, default=str), status, now, key))
            seq = int(c.execute(
                "INSERT INTO ops (op, video, segments, created_at) VALUES ('add', ?, ?, ?)",
                (key, np.asarray(seg_ids, dtype=np.int64).tobytes(), now),
            ).lastrowid)
        return seg_ids, seq

    def _delete_in_txn(self, c: sqlite3.Connection, key: int, now: float) -> int:
        ids = [r[0] for r in c.execute("SELECT id FROM segments WHERE video = ?", (key,))]
        touched = _identities.forget_video(c, key)
        c.execute("DELETE FROM videos WHERE id = ?", (key,))
        _identities.refresh(c, touched)  # its tracks are gone: centroids and names of their identities again
        c.execute(GC_ORPHAN_ENTITIES)  # knowledge graph: edges cascaded; drop entities left without one
        return int(c.execute(
            "INSERT INTO ops (op, video, segments, created_at) VALUES ('delete', ?, ?, ?)",
            (key, np.asarray(ids, dtype=np.int64).tobytes(), now),
        ).lastrowid)

    def delete_video(self, video_id: str, *, tenant: str | None = None) -> int:
        """Delete a video and everything under it; returns the op seq. Raises NotFoundError."""
        rec = self.get_video(video_id, tenant=tenant)
        with self.transaction() as c:
            return self._delete_in_txn(c, rec.key, time.time())

    def record_failure(self, source: str, code: str, reason: str, *, tenant: str = "default") -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO failures (tenant, source, code, reason, at) VALUES (?,?,?,?,?)",
                (tenant, source, code, reason, time.time()),
            )

    def clear_failure(self, source: str, *, tenant: str = "default") -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM failures WHERE tenant = ? AND source = ?", (tenant, source))

    # -- reads -------------------------------------------------------------------------
    def get_video(self, video_id: str, *, tenant: str | None = None) -> VideoRecord:
        row = self._conn().execute(f"SELECT {_VIDEO_COLS} FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise NotFoundError(
                f"no video with id {video_id!r} in this index",
                hint="`vidseek info --index DIR` lists the indexed videos",
            )
        n = self._conn().execute("SELECT COUNT(*) FROM segments WHERE video = ?", (row["id"],)).fetchone()[0]
        return _video_from_row(row, n)

    def get_video_by_key(self, key: int) -> VideoRecord:
        row = self._conn().execute(f"SELECT {_VIDEO_COLS} FROM videos WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise NotFoundError(f"no video with key {key}")
        return _video_from_row(row)

    def videos_by_keys(self, keys: Sequence[int]) -> dict[int, VideoRecord]:
        out: dict[int, VideoRecord] = {}
        keys = list(set(int(k) for k in keys))
        for chunk in _chunks(keys, 500):
            q = f"SELECT {_VIDEO_COLS} FROM videos WHERE id IN ({','.join('?' * len(chunk))})"
            for row in self._conn().execute(q, chunk):
                out[row["id"]] = _video_from_row(row)
        return out

    def find_by_source(self, source: str, *, tenant: str = "default") -> VideoRecord | None:
        row = self._conn().execute(
            f"SELECT {_VIDEO_COLS} FROM videos WHERE tenant = ? AND source = ?", (tenant, source)
        ).fetchone()
        return None if row is None else _video_from_row(row)

    def find_by_hash(self, content_hash: str, *, tenant: str = "default") -> VideoRecord | None:
        row = self._conn().execute(
            f"SELECT {_VIDEO_COLS} FROM videos WHERE tenant = ? AND content_hash = ?", (tenant, content_hash)
        ).fetchone()
        return None if row is None else _video_from_row(row)

    def list_videos(self, *, tenant: str | None = None, limit: int = 1000, offset: int = 0) -> list[VideoRecord]:
        sql = (
            f"SELECT {', '.join('v.' + c.strip() for c in _VIDEO_COLS.split(','))},"
            " (SELECT COUNT(*) FROM segments s WHERE s.video = v.id) AS n FROM videos v"
        )
        args: list = []
        if tenant is not None:
            sql += " WHERE v.tenant = ?"
            args.append(tenant)
        sql += " ORDER BY v.id LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [_video_from_row(r, r["n"]) for r in self._conn().execute(sql, args)]

    def segments_of(self, key: int) -> list[SegmentRecord]:
        rows = self._conn().execute("SELECT * FROM segments WHERE video = ? ORDER BY idx", (key,)).fetchall()
        return self._segments_from_rows(rows)

    def get_segments(self, ids: Sequence[int]) -> dict[int, SegmentRecord]:
        out: dict[int, SegmentRecord] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            rows = self._conn().execute(
                f"SELECT * FROM segments WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for s in self._segments_from_rows(rows):
                out[s.id] = s
        return out

    def _segments_from_rows(self, rows: list[sqlite3.Row]) -> list[SegmentRecord]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        kf: dict[int, list[float]] = {}
        for chunk in _chunks(ids, 500):
            for seg, t in self._conn().execute(
                f"SELECT segment, t FROM keyframes WHERE segment IN ({','.join('?' * len(chunk))}) ORDER BY t",
                chunk,
            ):
                kf.setdefault(seg, []).append(t)
        return [
            SegmentRecord(
                id=r["id"], video=r["video"], idx=r["idx"], start=r["start"], end=r["end"],
                transcript=r["transcript"], words=_json_field(r["words"], []), ocr_text=r["ocr_text"],
                labels=_json_field(r["labels"], []), shot=r["shot"], keyframe_times=tuple(kf.get(r["id"], ())),
            )
            for r in rows
        ]

    def shots_of(self, key: int) -> list[tuple[float, float]]:
        return [(r[0], r[1]) for r in self._conn().execute(
            "SELECT start, end FROM shots WHERE video = ? ORDER BY idx", (key,)
        )]

    def vectors(self, segment_ids: Sequence[int], modality: str) -> dict[int, np.ndarray]:
        """Stored unit vectors of one modality for those segments (absent where missing)."""
        return self.vectors_many(segment_ids, [modality])[modality]

    def vectors_many(self, segment_ids: Sequence[int], modalities: Sequence[str], *,
                     pending_only: bool = False) -> dict[str, dict[int, np.ndarray]]:
        """``vectors`` for several modalities in one pass (a search needs all of them).

        Rows pruned once the vector store saved them (``schema_vectors``) are read back
        from the store through ``vector_source`` (set by ``engine.index.VideoIndex``);
        ``pending_only`` reads only the rows the catalog still holds (op-log replay)."""
        out: dict[str, dict[int, np.ndarray]] = {m: {} for m in modalities}
        mods = list(modalities)
        ids = [int(i) for i in segment_ids]
        for chunk in _chunks(ids, 500):
            for seg, mod, data in self._conn().execute(
                f"SELECT segment, modality, data FROM vectors WHERE segment IN ({','.join('?' * len(chunk))})"
                f" AND modality IN ({','.join('?' * len(mods))})",
                [*chunk, *mods],
            ):
                out[mod][seg] = _f32(data)
        source = self.vector_source
        if source is not None and not pending_only and ids:
            missing = [i for i in ids if any(i not in out[m] for m in mods)]
            if missing:
                for m, got in source(missing, mods).items():
                    for seg, vec in got.items():
                        out[m].setdefault(seg, vec)
        return out

    # -- pending vector rows (schema_vectors) ----------------------------------------------
    def vector_prune_seq(self) -> int:
        """The last op whose segments' pending vector rows were pruned (0: none)."""
        try:
            row = self._conn().execute("SELECT seq FROM vector_prune WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # a catalog from before schema_vectors: nothing pruned
            return 0
        return int(row[0]) if row else 0

    def prune_vectors(self, through_seq: int, modalities: Sequence[str], *, older_than: float | None = None
                      ) -> tuple[int, int]:
        """Delete the pending ``modalities`` rows of segments added by ops up to
        ``through_seq`` (and, with ``older_than``, committed before that time): the
        caller's vector store has saved them. Returns (new prune seq, rows deleted)."""
        mods = list(modalities)
        done = self.vector_prune_seq()
        c = self._conn()
        sql, args = "SELECT MAX(seq) FROM ops WHERE seq <= ?", [int(through_seq)]
        if older_than is not None:
            sql += " AND created_at <= ?"
            args.append(float(older_than))
        cutoff = int(c.execute(sql, args).fetchone()[0] or 0)
        if cutoff <= done or not mods:
            return done, 0
        deleted = 0
        if cutoff - done > BULK_PRUNE_OPS:  # e.g. the first writer open of an index from before schema_vectors
            _log.info("catalog %s: dropping the vector rows of ops %d..%d that the vector store holds",
                      self.path, done + 1, cutoff)
            return cutoff, self._bulk_prune(cutoff, mods)
        with self.transaction() as t:
            for (blob,) in t.execute("SELECT segments FROM ops WHERE op = 'add' AND seq > ? AND seq <= ?",
                                     (done, cutoff)).fetchall():
                seg_ids = np.frombuffer(blob, dtype=np.int64).tolist()
                for chunk in _chunks(seg_ids, 500):
                    deleted += t.execute(
                        f"DELETE FROM vectors WHERE segment IN ({','.join('?' * len(chunk))})"
                        f" AND modality IN ({','.join('?' * len(mods))})", [*chunk, *mods]).rowcount
            t.execute("UPDATE vector_prune SET seq = ? WHERE id = 1", (cutoff,))
        return cutoff, deleted

    def _bulk_prune(self, cutoff: int, mods: list[str]) -> int:
        """``prune_vectors`` for many ops at once: copy the rows to keep into a new table
        and drop the old one. Deleting row by row rewrote every page of a 7.6 GB table
        through the WAL (5 GB of WAL within ten minutes at 1M segments); dropping a table
        only moves its pages to the free list. One transaction, as the row-wise prune."""
        c = self._conn()
        keep: list[int] = []
        for (blob,) in c.execute("SELECT segments FROM ops WHERE op = 'add' AND seq > ?", (cutoff,)):
            keep.extend(np.frombuffer(blob, dtype=np.int64).tolist())
        # DROP TABLE with foreign keys on runs an implicit DELETE first (every page again);
        # the pragma only takes effect outside a transaction.
        c.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.transaction() as t:
                before = int(t.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
                t.execute("CREATE TEMP TABLE prune_keep (id INTEGER PRIMARY KEY)")
                t.executemany("INSERT OR IGNORE INTO prune_keep (id) VALUES (?)", [(i,) for i in keep])
                t.execute(f"CREATE TABLE vectors_keep AS SELECT segment, modality, data FROM vectors"
                          f" WHERE modality NOT IN ({','.join('?' * len(mods))})"
                          f" OR segment IN (SELECT id FROM prune_keep)", mods)
                t.execute("DROP TABLE vectors")
                t.execute(VECTORS_TABLE)
                t.execute("INSERT INTO vectors (segment, modality, data) SELECT segment, modality, data FROM vectors_keep")
                t.execute("DROP TABLE vectors_keep")
                t.execute("DROP TABLE temp.prune_keep")
                after = int(t.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
                t.execute("UPDATE vector_prune SET seq = ? WHERE id = 1", (cutoff,))
        finally:
            c.execute("PRAGMA foreign_keys=ON")
        return before - after

    def reclaim_space(self, min_free_share: float = 0.5, min_free_bytes: int = 1 << 20) -> int:
        """``VACUUM`` when at least ``min_free_share`` of the file (and ``min_free_bytes``)
        is free pages, e.g. after the first prune of an index from before schema_vectors.
        Returns the bytes given back (0 when not worth it or the database is busy)."""
        c = self._conn()
        page = int(c.execute("PRAGMA page_size").fetchone()[0])
        total = int(c.execute("PRAGMA page_count").fetchone()[0]) * page
        free = int(c.execute("PRAGMA freelist_count").fetchone()[0]) * page
        if free < min_free_bytes or free < min_free_share * total:
            return 0
        _log.info("catalog %s: %.1f of %.1f GB are free pages: VACUUM (once; it rewrites the file)",
                  self.path, free / 1e9, total / 1e9)
        try:
            c.execute("VACUUM")
        except sqlite3.OperationalError as e:  # readers hold it: a later writer open retries
            _log.warning("catalog %s: VACUUM deferred (%s)", self.path, e)
            return 0
        return total - int(c.execute("PRAGMA page_count").fetchone()[0]) * page

    def keyframe_vectors(self, segment_ids: Sequence[int]) -> dict[int, list[tuple[float, np.ndarray]]]:
        out: dict[int, list[tuple[float, np.ndarray]]] = {}
        for chunk in _chunks([int(i) for i in segment_ids], 500):
            for seg, t, data in self._conn().execute(
                f"SELECT segment, t, vector FROM keyframes WHERE vector IS NOT NULL AND segment IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY t",
                chunk,
            ):
                out.setdefault(seg, []).append((t, _f32(data)))
        return out

    def second_vectors(self, segment_ids: Sequence[int]) -> dict[int, list[tuple[float, np.ndarray]]]:
        """Per segment, the (time, visual vector) of the evidence timeline's 1 fps frames
        inside it: denser than its keyframes."""
        out: dict[int, list[tuple[float, np.ndarray]]] = {}
        for chunk in _chunks([int(i) for i in segment_ids], 500):
            for seg, t, data in self._conn().execute(
                "SELECT s.id, u.start, u.vector FROM segments s JOIN timeline u ON u.video = s.video"
                " AND u.kind = 'visual' AND u.start >= s.start AND u.start < s.end"
                f" WHERE u.vector IS NOT NULL AND s.id IN ({','.join('?' * len(chunk))}) ORDER BY u.start",
                chunk,
            ):
                out.setdefault(seg, []).append((t, np.frombuffer(data, dtype=np.float16).astype(np.float32)))
        return out

    def words_between(self, video_key: int, start: float, end: float) -> list:
        rows = self._conn().execute(
            "SELECT words FROM segments WHERE video = ? AND start <= ? AND end >= ? ORDER BY idx",
            (int(video_key), float(end), float(start))).fetchall()
        seen: dict[tuple, list] = {}
        for (words,) in rows:
            for w in json.loads(words):
                seen.setdefault((w[0], w[1], w[2]), w)
        return sorted(seen.values(), key=lambda w: (w[0], w[1]))

    def timeline(self, video_key: int, start: float, end: float, kinds: Sequence[str] | None = None
                 ) -> list[TimelineUnit]:
        """The video's timeline units that overlap ``[start, end]`` (of ``kinds``; all when
        None), in time order."""
        sql = "SELECT kind, start, end, text, vector FROM timeline WHERE video = ? AND start <= ? AND end >= ?"
        args: list = [int(video_key), float(end), float(start)]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        rows = self._conn().execute(sql + " ORDER BY start, id", args).fetchall()
        return [TimelineUnit(k, s, e, t, None if v is None else np.frombuffer(v, dtype=np.float16).astype(np.float32))
                for k, s, e, t, v in rows]
    def labels_of(self, video_key: int, *, start: float | None = None, end: float | None = None,
                  kinds: Sequence[str] | None = None) -> list[FrameLabel]:
        return _labels.labels_of(self._conn(), video_key, start=start, end=end, kinds=kinds)

    def faces_of(self, video_key: int, *, descriptors: bool = False) -> list[FaceRecord]:
        return _labels.faces_of(self._conn(), video_key, descriptors=descriptors)

    def segment_labels(self, segment_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], float]]:
        return _labels.segment_labels(self._conn(), segment_ids)

    def segments_with(self, concepts: Sequence[tuple[str, str]], *, min_score: float = 0.0, limit: int = 1000
                      ) -> dict[int, dict[tuple[str, str], float]]:
        return _labels.segments_with(self._conn(), concepts, min_score=min_score, limit=limit)

    def label_document_frequency(self) -> tuple[int, dict[tuple[str, str], int]]:
        return _labels.label_document_frequency(self._conn())

    def max_seq(self) -> int:
        row = self._conn().execute("SELECT MAX(seq) FROM ops").fetchone()
        return int(row[0] or 0)

    def ops_since(self, seq: int) -> Iterator[Op]:
        for r in self._conn().execute("SELECT seq, op, video, segments FROM ops WHERE seq > ? ORDER BY seq", (seq,)):
            yield Op(int(r[0]), r[1], int(r[2]), np.frombuffer(r[3], dtype=np.int64).copy())

    def failures(self, *, tenant: str | None = None) -> list[Failure]:
        sql = "SELECT tenant, source, code, reason, at FROM failures"
        args: list = []
        if tenant is not None:
            sql += " WHERE tenant = ?"
            args.append(tenant)
        return [Failure(*r) for r in self._conn().execute(sql + " ORDER BY at", args)]

    def count_videos(self, *, tenant: str | None = None) -> int:
        """How many videos the index holds (of one tenant)."""
        if tenant is None:
            return int(self._conn().execute("SELECT COUNT(*) FROM videos").fetchone()[0])
        return int(self._conn().execute("SELECT COUNT(*) FROM videos WHERE tenant = ?", (tenant,)).fetchone()[0])

    def counts(self) -> dict[str, int]:
        c = self._conn()
        return {
            "videos": c.execute("SELECT COUNT(*) FROM videos").fetchone()[0],
            "shots": c.execute("SELECT COUNT(*) FROM shots").fetchone()[0],
            "segments": c.execute("SELECT COUNT(*) FROM segments").fetchone()[0],
            "keyframes": c.execute("SELECT COUNT(*) FROM keyframes").fetchone()[0],
            "failures": c.execute("SELECT COUNT(*) FROM failures").fetchone()[0],
            "seq": self.max_seq(),
        }

    def integrity_check(self) -> None:
        row = self._conn().execute("PRAGMA quick_check").fetchone()
        if row[0] != "ok":
            raise CorruptIndexError(f"catalog {self.path} failed its integrity check: {row[0]}")


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
