"""The stage interface of the mapper: one video is a ``Work`` that stages fill in turn.

A stage says what it is called (its timer and progress name), which ``Work`` fields it
needs and which it adds, which model it runs, which share of the worker's threads it
takes, and whether the index options turn it on. ``indexer.stages.build_stages``
lists the stages the options ask for, in order, and checks that every stage's needs
are added by a stage before it; ``indexer.mapper.analyse`` runs them. A new labeller
is a new module with a ``Stage`` subclass plus one line in ``indexer.stages.STAGES``,
and a test passes its own stage list to the executors instead of monkeypatching.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

import numpy as np

from engine.config import IndexConfig
from indexer.metadata import VideoMetadata
from indexer.options import IndexOptions

__all__ = ["Stage", "Work", "ProgressFn", "INITIAL_FIELDS"]

ProgressFn = Callable[[str, float], None]  # (stage, fraction of this video done)

CUT_SIDE = 160  # long side of the frames the cut detector samples (its default)


@dataclass
class Work:
    """Everything known about one video while the stages run; nothing is written anywhere.

    The first six fields are given, ``frame_taps`` is set up by stages' ``prepare``;
    the rest start empty and are filled by stages
    (``Stage.adds`` names which). Per-keyframe results are keyed by the decoded frame's
    actual time; per-segment results are lists parallel to ``segments``.
    """

    source: str
    content_hash: str
    config: IndexConfig
    options: IndexOptions
    meta: VideoMetadata | None = None
    fingerprint: Any = None  # indexer.reuse.FingerprintTap fed by the cut detector, or None
    # taps fed with the cut detector's samples (``tap(samples) -> samples``), set up by
    # stages' ``prepare`` before any stage runs
    frame_taps: list = field(default_factory=list)
    # probe
    info: Any = None  # indexer.media.MediaInfo
    mtime: float = 0.0
    # shots
    cuts: list[float] = field(default_factory=list)
    shots: list = field(default_factory=list)  # indexer.shots.Shot
    segments: list = field(default_factory=list)  # indexer.shots.Segment
    # keyframes
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (actual time, RGB)
    frame_time: dict[float, float] = field(default_factory=dict)  # requested -> actual time
    # per keyframe (actual time ->)
    keyframe_vectors: dict[float, np.ndarray] = field(default_factory=dict)
    keyframe_labels: dict[float, list] = field(default_factory=dict)  # [[name, prob], ...]
    keyframe_text: dict[float, str] = field(default_factory=dict)  # OCR
    keyframe_lines: dict[float, list] = field(default_factory=dict)  # OCR lines: [(text, [x0, y0, x1, y1] in 0..1)]
    # text read again between keyframes where it changed (indexer.stages.text_follow), as keyframe_lines
    followup_lines: dict[float, list] = field(default_factory=dict)
    # per follow-up read, the bands it read ([0, y0, 1, y1]): every line in them is in followup_lines
    followup_bands: dict[float, list] = field(default_factory=dict)
    # text of a video's opening that no keyframe saw (a title card): the segment's on-screen text too
    opening_text: dict[float, list[str]] = field(default_factory=dict)
    # frame labellers: [(kind, label, score, box in 0..1 or None)] and detected faces
    frame_labels: dict[float, list] = field(default_factory=dict)
    faces: dict[float, list] = field(default_factory=dict)  # engine.catalog.FaceRecord (segment unset)
    face_tracks: list = field(default_factory=list)  # engine.catalog.FaceTrack (segment = index into segments)
    # audio and speech
    audio: np.ndarray | None = None
    transcripts: list[str] = field(default_factory=list)  # per segment
    words: list[list] = field(default_factory=list)  # per segment: [[start, end, word], ...]
    language: str | None = None
    language_prob: float | None = None
    # text embeddings
    segment_vectors: list[dict[str, np.ndarray]] = field(default_factory=list)  # per segment
    ocr_texts: list[str] = field(default_factory=list)  # per segment
    # fine-grained evidence (engine.catalog.TimelineUnit): phrases, text spans, 1 fps frames
    timeline: list = field(default_factory=list)
    # per segment: its best keyframe as a small JPEG (indexer.thumbs), None without one
    thumbnails: list = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def tap(self, kind: type):
        """The frame tap of this class a stage's ``prepare`` added, or None."""
        return next((tap for tap in self.frame_taps if isinstance(tap, kind)), None)

    def keyframe_times(self, segment) -> list[float]:
        """The decoded times of a segment's keyframes (those that were decoded)."""
        out = []
        for t in segment.keyframe_times:
            a = self.frame_time.get(float(t))
            if a is not None:
                out.append(a)
        return out


INITIAL_FIELDS = frozenset(f.name for f in fields(Work)[:7])


class Stage:
    """One step of the mapper. Subclasses set the class attributes and ``run``.

    ``needs``: ``Work`` fields that an earlier stage must add (or that are given).
    ``adds``: the fields this stage fills. ``model``: what it runs (for reports).
    ``thread_share``: the share of the worker's threads its model may use (1.0: all).
    ``at``: where this stage starts, as a fraction of a video's analysis (progress).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    adds: ClassVar[tuple[str, ...]] = ()
    at: ClassVar[float] = 0.0
    thread_share: ClassVar[float] = 1.0

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        """Whether the index options ask for this stage."""
        return True

    def model(self, config: IndexConfig) -> str | None:
        """The model this stage runs with these index settings (None: no model)."""
        return None

    def applies(self, work: Work) -> bool:
        """Whether this video gets the stage (e.g. speech only with an audio track)."""
        return True

    def prepare(self, work: Work) -> None:
        """Called for every stage before any stage runs: e.g. add a tap to
        ``work.frame_taps`` to see the frames the cut detector samples."""

    def set_threads(self, threads: int) -> None:
        """Bound this stage's model to ``threads`` (the worker's share); default: nothing to do."""

    def run(self, work: Work) -> None:
        raise NotImplementedError

    def describe(self, config: IndexConfig) -> dict:
        return {"name": self.name, "needs": list(self.needs), "adds": list(self.adds),
                "model": self.model(config), "thread_share": self.thread_share}

    def __repr__(self) -> str:
        return f"<stage {self.name}>"
