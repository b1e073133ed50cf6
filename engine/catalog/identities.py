"""Face tracks, identities and names in the catalog (schema_identities).

Everything here runs inside a catalog transaction, so an index is always either
before or after a video's tracks joined their identities, never in between:

- ``insert_tracks`` writes a video's tracks (with their name evidence) and, unless the
  privacy switch is off, assigns each to an identity of the video's tenant:
  ``assign`` compares the track's descriptor with every identity's centroid and joins
  the most similar one at ``JOIN_SIMILARITY`` or more (two tracks on screen at the
  same time in one video are never one person), else starts a new identity. That is
  incremental: one matrix product per new track, no recomputation of the library.
- ``forget_video`` (before a video's rows go) lists the identities it touches and
  ``refresh`` (after) recomputes their centroids and names, deleting identities left
  with no track.
- ``refresh`` also decides each identity's name from the evidence of its tracks
  (``decide_name``) and rewrites the identity's knowledge-graph edges: one
  ``appears_in`` edge from the person entity of its name to each segment of a video
  where one of its tracks is on screen (extractor ``FACE_EXTRACTOR``, the identity
  and the track in ``attrs``), so a name query finds those moments.

Descriptors are float16 unit vectors. Nothing here knows about video decoding.
"""
from __future__ import annotations

import json
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = ["FaceTrack", "NameEvidence", "JOIN_SIMILARITY", "NAME_MIN", "NAME_MARGIN", "FACE_EXTRACTOR",
           "identity_enabled", "insert_tracks", "assign", "forget_video", "refresh", "decide_name",
           "metadata_evidence", "name_key", "sync_graph"]

# Cosine similarity of a track's FaceRes descriptor to an identity's centroid at which
# it joins that identity. Measured on shared/media's GRID talking heads (55 faces, 10
# people, docs/identities.md): the same person 0.866-0.982 (0.873-0.944 across two
# recordings of one man), different people at most 0.695. The join sits above the
# middle of that gap because merging two people is the error the issue rules out.
JOIN_SIMILARITY = 0.78
# A name is shown when its evidence (noisy-or of the confidences of every piece of it
# on the identity's tracks) reaches NAME_MIN and beats the next name by NAME_MARGIN.
NAME_MIN = 0.5
NAME_MARGIN = 0.2
NAME_ALIKE = 0.85  # difflib ratio at which two spellings are one name (a misheard or misread letter or two)
FACE_EXTRACTOR = "face-identity/1"
# metadata `people` evidence: confidence for the one identity that holds more than
# DOMINANT_SHARE of a video's face-track time, shared among the names listed
METADATA_CONFIDENCE = 0.8
DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class NameEvidence:
    """A name seen with a track: ``source`` is metadata, caption or speech; ``text`` what
    it was read from; ``t`` when (seconds in the video)."""

    name: str
    source: str
    confidence: float
    text: str = ""
    t: float | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "source": self.source, "confidence": round(float(self.confidence), 3),
             "text": self.text}
        if self.t is not None:
            d["t"] = round(float(self.t), 2)
        return d


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through a shot. ``segment`` is the index of its best face's
    segment in its video (``NewVideo.segments``) when written, the segment id when
    read. ``members`` are the ``(t, box)`` of the faces it links (``NewVideo.faces``)."""

    start: float
    end: float
    box: tuple[float, float, float, float]
    quality: float
    faces: int
    descriptor: np.ndarray | None = None
    segment: int | None = None
    names: tuple[NameEvidence, ...] = ()
    members: tuple = ()
    id: int | None = None
    video: int | None = None
    identity: int | None = None

    def to_dict(self) -> dict:
        d = {"start": round(self.start, 3), "end": round(self.end, 3),
             "box": [round(float(x), 4) for x in self.box], "quality": round(self.quality, 3), "faces": self.faces}
        if self.id is not None:
            d["track"] = self.id
        if self.identity is not None:
            d["identity"] = self.identity
        if self.names:
            d["names"] = [n.to_dict() for n in self.names]
        return d


def name_key(name: str) -> str:
    """Names compare NFKC-normalised, case-folded, with single spaces."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _f16(v: np.ndarray | None) -> bytes | None:
    return None if v is None else np.ascontiguousarray(v, dtype=np.float16).tobytes()


def _vec(b: bytes | None) -> np.ndarray | None:
    return None if not b else np.frombuffer(b, dtype=np.float16).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def identity_enabled(c: sqlite3.Connection) -> bool:
    """The per-index privacy switch (True: descriptors are kept and clustered)."""
    row = c.execute("SELECT v FROM identity_settings WHERE k = 'enabled'").fetchone()
    return row is None or row[0] == "1"


def insert_tracks(c: sqlite3.Connection, key: int, tenant: str, seg_ids: Sequence[int], tracks: Sequence[FaceTrack],
                  face_ids: dict[tuple, int], people: Sequence[str]) -> set[int]:
    """Write a video's tracks and their evidence, link its faces to them, cluster them
    into the tenant's identities and add metadata evidence; returns the identities
    touched (for ``refresh``). With identity off, tracks are kept without descriptor."""
    enabled = identity_enabled(c)
    ids: list[int] = []
    for tr in tracks:
        seg = seg_ids[tr.segment] if tr.segment is not None and 0 <= tr.segment < len(seg_ids) else None
        tid = int(c.execute(
            "INSERT INTO face_tracks (video, segment, start, end, box, quality, faces, descriptor)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (key, seg, float(tr.start), float(max(tr.end, tr.start)), json.dumps([round(float(b), 4) for b in tr.box]),
             float(tr.quality), int(tr.faces), _f16(tr.descriptor) if enabled else None)).lastrowid)
        ids.append(tid)
        for m in tr.members:
            fid = face_ids.get((round(float(m[0]), 4), tuple(round(float(b), 4) for b in m[1])))
            if fid is not None:
                c.execute("UPDATE faces SET track = ? WHERE id = ?", (tid, fid))
        c.executemany("INSERT INTO name_evidence (track, video, name, source, confidence, text, t) VALUES (?,?,?,?,?,?,?)",
                      [(tid, key, n.name, n.source, float(min(max(n.confidence, 0.0), 1.0)), n.text, n.t)
                       for n in tr.names])
    if not enabled or not ids:
        return set()
    touched = assign(c, tenant, ids)
    touched |= metadata_evidence(c, key, people)
    return touched


def assign(c: sqlite3.Connection, tenant: str, track_ids: Sequence[int]) -> set[int]:
    """Put each of ``track_ids`` (with a descriptor, no identity yet) into the most
    similar identity of ``tenant`` at ``JOIN_SIMILARITY`` or more, best tracks first,
    or into a new one. Returns the identities touched."""
    now = time.time()
    rows = c.execute("SELECT id, centroid, tracks FROM identities WHERE tenant = ? AND centroid IS NOT NULL",
                     (tenant,)).fetchall()
    iids = [int(r[0]) for r in rows]
    counts = [int(r[2]) for r in rows]
    # one conversion of every centroid at once (800 small ones took most of an add's time)
    cents = (np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(len(rows), -1).astype(np.float32)
             if rows else None)
    qmarks = ",".join("?" * len(track_ids))
    new = c.execute(f"SELECT id, video, start, end, descriptor FROM face_tracks WHERE id IN ({qmarks})"
                    " AND descriptor IS NOT NULL ORDER BY quality DESC, id", [int(t) for t in track_ids]).fetchall()
    placed: dict[int, list[tuple[int, float, float]]] = {}  # identity -> (video, start, end) placed in this call
    touched: set[int] = set()
    for tid, video, start, end, blob in new:
        d = _unit(_vec(blob))
        best = None
        if cents is not None and cents.shape[1] == d.shape[0]:
            sims = cents @ d
            for j in np.argsort(-sims):
                if sims[j] < JOIN_SIMILARITY:
                    break
                # cannot-link: one person is not twice on screen at once in one video
                if any(v == video and s < end and start < e for v, s, e in placed.get(iids[j], [])):
                    continue
                best = int(j)
                break
        if best is None:
            iid = int(c.execute("INSERT INTO identities (tenant, centroid, tracks, created_at, updated_at)"
                                " VALUES (?,?,1,?,?)", (tenant, _f16(d), now, now)).lastrowid)
            iids.append(iid)
            counts.append(1)
            cents = d[None, :].copy() if cents is None or cents.shape[1] != d.shape[0] else np.vstack([cents, d])
            best = len(iids) - 1
        else:
            n = counts[best]
            cents[best] = _unit(cents[best] * n + d)
            counts[best] = n + 1
            c.execute("UPDATE identities SET centroid = ?, tracks = ?, updated_at = ? WHERE id = ?",
                      (_f16(cents[best]), counts[best], now, iids[best]))
        c.execute("UPDATE face_tracks SET identity = ? WHERE id = ?", (iids[best], tid))
        placed.setdefault(iids[best], []).append((video, start, end))
        touched.add(iids[best])
    return touched


def metadata_evidence(c: sqlite3.Connection, key: int, people: Sequence[str]) -> set[int]:
    """The catalogue's ``people`` of video ``key`` as name evidence for the identity that
    dominates it (more than ``DOMINANT_SHARE`` of its face-track time): confidence
    ``METADATA_CONFIDENCE`` x that share / the number of names listed, on its longest
    track. Replaces the video's earlier metadata evidence. Returns the identities touched."""
    old = {int(r[0]) for r in c.execute(
        "SELECT DISTINCT t.identity FROM name_evidence n JOIN face_tracks t ON t.id = n.track"
        " WHERE n.video = ? AND n.source = 'metadata' AND t.identity IS NOT NULL", (key,))}
    c.execute("DELETE FROM name_evidence WHERE video = ? AND source = 'metadata'", (key,))
    people = [p for p in dict.fromkeys(str(p).strip() for p in people) if p]
    rows = c.execute("SELECT identity, SUM(end - start), COUNT(*) FROM face_tracks WHERE video = ?"
                     " AND identity IS NOT NULL GROUP BY identity ORDER BY 2 DESC", (key,)).fetchall()
    if not people or not rows:
        return old
    total = sum(max(float(r[1]), 1e-3) for r in rows)
    iid, dur = int(rows[0][0]), max(float(rows[0][1]), 1e-3)
    share = dur / total
    if share <= DOMINANT_SHARE:  # two people on screen as long as each other: neither dominates
        return old
    track = int(c.execute("SELECT id FROM face_tracks WHERE video = ? AND identity = ? ORDER BY end - start DESC,"
                          " quality DESC LIMIT 1", (key, iid)).fetchone()[0])
    conf = METADATA_CONFIDENCE * share / len(people)
    c.executemany("INSERT INTO name_evidence (track, video, name, source, confidence, text) VALUES (?,?,?,?,?,?)",
                  [(track, key, p, "metadata", conf, f"people: {', '.join(people)}") for p in people])
    return old | {iid}


def forget_video(c: sqlite3.Connection, key: int) -> set[int]:
    """Before video ``key`` is deleted: the identities its tracks belong to."""
    return {int(r[0]) for r in c.execute(
        "SELECT DISTINCT identity FROM face_tracks WHERE video = ? AND identity IS NOT NULL", (key,))}


def _alike(a: str, b: str) -> bool:
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b).ratio() >= NAME_ALIKE


def decide_name(evidence: Iterable[tuple[str, str, float]]) -> tuple[str, str, float] | None:
    """``(name, source, confidence)`` pieces -> the name to show ``(name, source, score)``
    or None. Spellings of one name (``name_key``, then any at least ``NAME_ALIKE`` alike:
    "Grace Harper" heard, "Grace Hopper" read) are one name; per name, the noisy-or of
    its confidences; the best name wins at ``NAME_MIN`` or more and ``NAME_MARGIN`` above
    the next; its source is the kind that contributed most; its display form the most
    confident spelling."""
    by: dict[str, dict] = {}
    for name, source, conf in sorted(evidence, key=lambda x: -float(x[2])):
        k = name_key(name)
        if not k:
            continue
        k = next((have for have in by if have == k or _alike(have, k)), k)
        e = by.setdefault(k, {"miss": 1.0, "src": {}, "form": (name, -1.0)})
        e["miss"] *= 1.0 - min(max(float(conf), 0.0), 0.999)
        e["src"][source] = e["src"].get(source, 0.0) + float(conf)
        if conf > e["form"][1]:
            e["form"] = (name, float(conf))
    if not by:
        return None
    ranked = sorted(((1.0 - e["miss"], k) for k, e in by.items()), reverse=True)
    score, k = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if score < NAME_MIN or score - second < NAME_MARGIN:
        return None
    e = by[k]
    return e["form"][0], max(e["src"], key=e["src"].get), round(score, 4)


def refresh(c: sqlite3.Connection, identity_ids: Iterable[int], *, recompute: bool = True) -> None:
    """Decide each identity's name again and bring its graph edges up to date; with
    ``recompute`` (after a delete, merge or split) also its centroid and track count
    from its tracks, deleting an identity with no track left. ``assign`` keeps the
    centroid of an add current itself, so an add skips that read of every descriptor;
    and when the name stays, only tracks without edges get theirs."""
    now = time.time()
    for iid in sorted({int(i) for i in identity_ids}):
        row = c.execute("SELECT name, name_source, name_confidence FROM identities WHERE id = ?", (iid,)).fetchone()
        if row is None:
            continue
        if recompute:
            descs = [_vec(r[0]) for r in c.execute(
                "SELECT descriptor FROM face_tracks WHERE identity = ? AND descriptor IS NOT NULL", (iid,))]
            if not descs:
                delete_graph(c, iid)
                c.execute("UPDATE face_tracks SET identity = NULL WHERE identity = ?", (iid,))
                c.execute("DELETE FROM identities WHERE id = ?", (iid,))
                continue
            c.execute("UPDATE identities SET centroid = ?, tracks = ?, updated_at = ? WHERE id = ?",
                      (_f16(_unit(np.mean(np.stack(descs), axis=0))), len(descs), now, iid))
        name = tuple(row)
        if row[1] != "user":
            ev = c.execute("SELECT n.name, n.source, n.confidence FROM name_evidence n JOIN face_tracks t"
                           " ON t.id = n.track WHERE t.identity = ?", (iid,)).fetchall()
            got = decide_name((r[0], r[1], r[2]) for r in ev)
            name = got if got else (None, None, None)
            c.execute("UPDATE identities SET name = ?, name_source = ?, name_confidence = ?, updated_at = ?"
                      " WHERE id = ?", (*name, now, iid))
        sync_graph(c, iid, only_new=not recompute and name == tuple(row))


def delete_graph(c: sqlite3.Connection, iid: int) -> None:
    from engine.catalog.schema_graph import GC_ORPHAN_ENTITIES

    n = c.execute("DELETE FROM edges WHERE extractor = ? AND json_extract(attrs, '$.identity') = ?",
                  (FACE_EXTRACTOR, int(iid))).rowcount
    if n:
        c.execute(GC_ORPHAN_ENTITIES)
        c.execute("UPDATE graph_meta SET v = v + 1 WHERE k = 'version'")


def sync_graph(c: sqlite3.Connection, iid: int, *, only_new: bool = False) -> None:
    """The identity's ``appears_in`` edges: person entity of its name -> each video
    segment under one of its tracks (provenance: the video, the segment, modality
    ``visual``, ``FACE_EXTRACTOR``, the name's confidence, the track's time range, and
    the identity, track and name source in ``attrs``). ``only_new``: the name is as
    before; add the edges of tracks that have none, leave the rest."""
    from engine.names import normalise_alias, script_of

    if not only_new:
        delete_graph(c, iid)
    row = c.execute("SELECT tenant, name, name_source, name_confidence FROM identities WHERE id = ?", (iid,)).fetchone()
    if row is None or not row[1]:
        return
    tenant, name, source, conf = row[0], row[1], row[2], float(row[3] if row[3] is not None else 1.0)
    now = time.time()
    key = normalise_alias(name)
    got = c.execute("SELECT id FROM entities WHERE tenant = ? AND type = 'person' AND key = ?", (tenant, key)).fetchone()
    if got is None:
        eid = int(c.execute("INSERT INTO entities (tenant, type, name, key, created_at) VALUES (?, 'person', ?, ?, ?)",
                            (tenant, name, key, now)).lastrowid)
    else:
        eid = int(got[0])
    c.execute("INSERT OR IGNORE INTO entity_aliases (entity, alias, surface, lang, script) VALUES (?,?,?,NULL,?)",
              (eid, key, name, script_of(name)))
    tracks = c.execute("SELECT id, video, start, end FROM face_tracks WHERE identity = ?", (iid,)).fetchall()
    if only_new:
        have = {int(r[0]) for r in c.execute(
            "SELECT json_extract(attrs, '$.track') FROM edges WHERE extractor = ? AND src_entity = ?"
            " AND json_extract(attrs, '$.identity') = ?", (FACE_EXTRACTOR, eid, iid)) if r[0] is not None}
        tracks = [t for t in tracks if int(t[0]) not in have]
    edges = []
    for tid, video, start, end in tracks:
        segs = c.execute("SELECT id FROM segments WHERE video = ? AND end > ? AND start < ?",
                         (video, start, max(end, start + 1e-3))).fetchall()
        attrs = json.dumps({"identity": iid, "track": tid, "name_source": source})
        for (sid,) in segs:
            edges.append((tenant, eid, video, video, sid, FACE_EXTRACTOR, min(max(conf, 0.0), 1.0),
                          float(start), float(end), attrs, now))
    if edges or not only_new:
        c.executemany(
            "INSERT INTO edges (tenant, relation, src_entity, dst_video, video, segment, modality, extractor,"
            " confidence, dst_start, dst_end, attrs, created_at)"
            " VALUES (?, 'appears_in', ?, ?, ?, ?, 'visual', ?, ?, ?, ?, ?, ?)", edges)
        c.execute("UPDATE graph_meta SET v = v + 1 WHERE k = 'version'")
