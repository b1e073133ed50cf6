"""Frame labels and faces in the catalog (schema_labels): the rows, how a video's are
written inside its add transaction, and the reads that search and the API need."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = ["FrameLabel", "FaceRecord", "insert_labels", "insert_faces", "labels_of", "faces_of",
           "segment_labels", "segments_with", "label_document_frequency"]


@dataclass(frozen=True)
class FrameLabel:
    """One label of one keyframe. ``segment`` is the index of the segment in its video
    (``NewVideo.segments``) when written and the segment id when read back."""

    t: float
    kind: str
    label: str
    score: float
    box: tuple[float, float, float, float] | None = None
    segment: int | None = None

    def to_dict(self) -> dict:
        d = {"t": round(self.t, 3), "kind": self.kind, "label": self.label, "score": round(self.score, 4)}
        if self.box is not None:
            d["box"] = [round(float(x), 4) for x in self.box]
        return d


@dataclass(frozen=True)
class FaceRecord:
    """One detected face: box as fractions of the frame, detector score, gender and its
    probability, age in years, expression and its probability, and the descriptor."""

    t: float
    box: tuple[float, float, float, float]
    score: float
    gender: str | None = None
    gender_p: float | None = None
    age: float | None = None
    emotion: str | None = None
    emotion_p: float | None = None
    descriptor: np.ndarray | None = None
    segment: int | None = None

    def to_dict(self) -> dict:
        d = {"t": round(self.t, 3), "box": [round(float(x), 4) for x in self.box], "score": round(self.score, 4)}
        for k in ("gender", "gender_p", "age", "emotion", "emotion_p"):
            v = getattr(self, k)
            if v is not None:
                d[k] = round(v, 3) if isinstance(v, float) else v
        return d


def _box(text: str | None) -> tuple[float, ...] | None:
    return None if text is None else tuple(json.loads(text))


def insert_labels(c: sqlite3.Connection, key: int, seg_ids: Sequence[int], labels: Iterable[FrameLabel]) -> None:
    c.executemany(
        "INSERT INTO frame_labels (video, segment, t, kind, label, score, box) VALUES (?,?,?,?,?,?,?)",
        [(key, _segment_id(seg_ids, x.segment), float(x.t), x.kind, x.label, float(x.score),
          None if x.box is None else json.dumps([round(float(b), 4) for b in x.box]))
         for x in labels],
    )


def insert_faces(c: sqlite3.Connection, key: int, seg_ids: Sequence[int], faces: Iterable[FaceRecord]) -> None:
    c.executemany(
        "INSERT INTO faces (video, segment, t, box, score, gender, gender_p, age, emotion, emotion_p, descriptor)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(key, _segment_id(seg_ids, f.segment), float(f.t), json.dumps([round(float(b), 4) for b in f.box]),
          float(f.score), f.gender, f.gender_p, f.age, f.emotion, f.emotion_p,
          None if f.descriptor is None else np.ascontiguousarray(f.descriptor, dtype=np.float16).tobytes())
         for f in faces],
    )


def _segment_id(seg_ids: Sequence[int], idx: int | None) -> int | None:
    return seg_ids[idx] if idx is not None and 0 <= idx < len(seg_ids) else None


def labels_of(c: sqlite3.Connection, video_key: int, *, start: float | None = None, end: float | None = None,
              kinds: Sequence[str] | None = None) -> list[FrameLabel]:
    """A video's labels in time order (within ``[start, end]`` and of ``kinds`` when given)."""
    sql, args = "SELECT t, kind, label, score, box, segment FROM frame_labels WHERE video = ?", [int(video_key)]
    if start is not None:
        sql, args = sql + " AND t >= ?", args + [float(start)]
    if end is not None:
        sql, args = sql + " AND t <= ?", args + [float(end)]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += list(kinds)
    rows = c.execute(sql + " ORDER BY t, kind, score DESC", args).fetchall()
    return [FrameLabel(t, k, lab, s, _box(b), seg) for t, k, lab, s, b, seg in rows]


def faces_of(c: sqlite3.Connection, video_key: int, *, descriptors: bool = False) -> list[FaceRecord]:
    rows = c.execute(
        "SELECT t, box, score, gender, gender_p, age, emotion, emotion_p, descriptor, segment FROM faces"
        " WHERE video = ? ORDER BY t, id", (int(video_key),)).fetchall()
    return [FaceRecord(t, _box(b), s, g, gp, a, e, ep,
                       np.frombuffer(d, dtype=np.float16).astype(np.float32) if descriptors and d else None, seg)
            for t, b, s, g, gp, a, e, ep, d, seg in rows]


def segment_labels(c: sqlite3.Connection, segment_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], float]]:
    """Per segment id: ``{(kind, label): best score over its keyframes}``."""
    out: dict[int, dict[tuple[str, str], float]] = {}
    ids = [int(i) for i in segment_ids]
    for k in range(0, len(ids), 900):
        chunk = ids[k:k + 900]
        rows = c.execute(
            f"SELECT segment, kind, label, MAX(score) FROM frame_labels WHERE segment IN ({','.join('?' * len(chunk))})"
            " GROUP BY segment, kind, label", chunk).fetchall()
        for sid, kind, label, s in rows:
            out.setdefault(sid, {})[(kind, label)] = float(s)
    return out


def segments_with(c: sqlite3.Connection, concepts: Sequence[tuple[str, str]], *, min_score: float = 0.0,
                  limit: int = 1000) -> dict[int, dict[tuple[str, str], float]]:
    """Segments that carry any of ``concepts`` (``(kind, label)`` pairs) at ``min_score``
    or more, with the best score of each: the label retriever's candidates."""
    if not concepts:
        return {}
    cond = " OR ".join("(kind = ? AND label = ?)" for _ in concepts)
    args = [x for pair in concepts for x in pair] + [float(min_score), int(limit)]
    rows = c.execute(
        f"SELECT segment, kind, label, MAX(score) AS s FROM frame_labels WHERE ({cond}) AND score >= ?"
        " AND segment IS NOT NULL GROUP BY segment, kind, label ORDER BY s DESC LIMIT ?", args).fetchall()
    out: dict[int, dict[tuple[str, str], float]] = {}
    for sid, kind, label, s in rows:
        out.setdefault(sid, {})[(kind, label)] = float(s)
    return out


def label_document_frequency(c: sqlite3.Connection) -> tuple[int, dict[tuple[str, str], int]]:
    """(number of segments, per (kind, label) the number of segments that carry it):
    how informative each concept is in this library."""
    n = int(c.execute("SELECT COUNT(*) FROM segments").fetchone()[0])
    rows = c.execute("SELECT kind, label, COUNT(DISTINCT segment) FROM frame_labels GROUP BY kind, label").fetchall()
    return n, {(k, lab): int(df) for k, lab, df in rows}
