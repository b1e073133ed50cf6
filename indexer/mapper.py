"""The mapper: one file -> a complete ``NewVideo`` by running the stages in order.

Pure with respect to the index (nothing is written anywhere), so it runs in worker
processes, and could run per partition on a distributed engine. Each stage is timed
and reports progress through a callback; nothing here draws on a terminal.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine import accel
from engine.catalog import NewSegment, NewVideo
from engine.config import IndexConfig
from engine.errors import VidseekError
from indexer.labels import video_labels
from indexer.metadata import VideoMetadata
from indexer.options import IndexOptions
from indexer.stages import ProgressFn, Stage, Work, build_stages
from indexer.stages.base import CUT_SIDE

__all__ = ["analyse", "assemble", "Analysis", "analyse_file", "set_threads", "Fingerprint"]

log = logging.getLogger("vidseek.indexer")

Fingerprint = tuple[np.ndarray, np.ndarray]  # reused-footage (times, hashes), see indexer.reuse


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def analyse(
    source: str,
    content_hash: str,
    config: IndexConfig,
    options: IndexOptions,
    meta: VideoMetadata | None = None,
    progress: ProgressFn | None = None,
    fingerprint=None,
    stages: Sequence[Stage] | None = None,
) -> NewVideo:
    """One file -> a complete ``NewVideo`` (nothing written anywhere).

    ``stages``: the stages to run (default: ``build_stages(options)``).
    ``fingerprint``: a reused-footage tap (``indexer.reuse.FingerprintTap``) fed with
    the cut detector's frames, so that the graph stage need not decode the video again
    (read ``fingerprint.result()`` afterwards); left unfed when the cut sampling does
    not fit it.
    """
    say = progress or (lambda stage, frac: None)
    work = Work(source, content_hash, config, options, meta, fingerprint)
    timings: dict[str, float] = {}
    stages = build_stages(options) if stages is None else stages
    for st in stages:
        st.prepare(work)
    for st in stages:
        if not st.applies(work):
            continue
        say(st.name, st.at)
        t0 = time.perf_counter()
        st.run(work)
        timings[st.name] = timings.get(st.name, 0.0) + time.perf_counter() - t0
    say("done", 1.0)
    return assemble(work, timings)


def _segment(work: Work, i: int, s) -> NewSegment:
    kts = work.keyframe_times(s)
    vectors: dict[str, np.ndarray] = {}
    kvs = [work.keyframe_vectors[t] for t in kts if t in work.keyframe_vectors]
    if kvs:
        vectors["visual"] = _normalise_rows(np.mean(kvs, axis=0, keepdims=True))[0]
    if work.segment_vectors:
        vectors.update(work.segment_vectors[i])
    merged: dict[str, float] = {}
    for t in kts:
        for name, p in work.keyframe_labels.get(t, []):
            merged[name] = max(merged.get(name, 0.0), p)
    top = work.options.visual_labels
    labels = sorted(([k, v] for k, v in merged.items()), key=lambda x: -x[1])[:top]
    return NewSegment(
        start=float(s.start), end=float(s.end), shot_index=int(s.shot_index),
        transcript=work.transcripts[i] if work.transcripts else "",
        words=work.words[i] if work.words else [],
        ocr_text=work.ocr_texts[i] if work.ocr_texts else "", labels=labels, vectors=vectors,
        keyframes=[(t, work.keyframe_labels.get(t, []), work.keyframe_vectors.get(t)) for t in kts],
        thumbnail=work.thumbnails[i] if i < len(work.thumbnails) else None,
    )


def assemble(work: Work, timings: dict[str, float]) -> NewVideo:
    """The filled ``Work`` -> the ``NewVideo`` the index commits."""
    info, meta = work.info, work.meta
    segs = [_segment(work, i, s) for i, s in enumerate(work.segments)]
    labels, faces = video_labels(work)
    return NewVideo(
        source=work.source, content_hash=work.content_hash, tenant=work.options.tenant,
        size_bytes=info.size_bytes, mtime=work.mtime, title=meta.title if meta else None,
        description=meta.description if meta else None, tags=meta.tags if meta else [],
        people=meta.people if meta else [], extra=meta.extra if meta else {},
        duration=float(info.duration), width=info.width, height=info.height, fps=info.fps,
        container=info.container, video_codec=info.video_codec, audio_codec=info.audio_codec,
        has_audio=bool(info.has_audio), language=work.language, language_prob=work.language_prob,
        stats={
            "stages": {k: round(v, 4) for k, v in timings.items()},
            "cuts": [round(c, 3) for c in work.cuts],
            "has_text": any(s.ocr_text.strip() for s in segs),
            "has_speech": any(s.transcript.strip() for s in segs),
            **work.stats,
        },
        shots=[(float(a.start), float(a.end)) for a in work.shots], segments=segs, timeline=list(work.timeline),
        labels=labels, faces=faces, face_tracks=list(work.face_tracks),
    )


@dataclass
class Analysis:
    """One file's analysis: the video (None on failure), the reused-footage fingerprint
    taken from the cut detector's frames (None when the graph stage is off or the
    sampling does not fit), seconds spent, and the error when it failed."""

    source: str
    video: NewVideo | None
    fingerprint: Fingerprint | None = None
    seconds: float = 0.0
    code: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.video is not None


def analyse_file(source: str, content_hash: str, config: IndexConfig, options: IndexOptions,
                 meta: VideoMetadata | None = None, progress: ProgressFn | None = None,
                 stages: Sequence[Stage] | None = None, *, catch: bool = True) -> Analysis:
    """``analyse`` plus the fingerprint tap. With ``catch`` (the batch executors) any
    failure becomes an ``Analysis`` with its code and reason, so one bad file never
    stops a batch; without it (the service's jobs) exceptions propagate."""
    import indexer.mapper as this  # looked up at call time: a test may hold ``analyse``
    from indexer.reuse import FingerprintTap

    t0 = time.perf_counter()
    tap = FingerprintTap() if options.graph else None
    if options.device is not None:  # before any model loads; models are cached per setting
        accel.set_device(options.device)
    try:
        video = this.analyse(source, content_hash, config, options, meta, progress, fingerprint=tap,
                             stages=stages)
        fp = None
        if tap is not None and tap.fits(options.cut_fps, CUT_SIDE, tap.options):
            t1 = time.perf_counter()
            fp = tap.result()
            video.stats.setdefault("stages", {})["fingerprint"] = round(time.perf_counter() - t1, 4)
        fell_back = accel.fell_back()  # a runtime on the CPU although a GPU is present (auto)
        if fell_back:
            video.stats["cpu_fallback"] = fell_back
        return Analysis(source, video, fp, time.perf_counter() - t0)
    except VidseekError as e:
        if not catch:
            raise
        return Analysis(source, None, None, time.perf_counter() - t0, e.code, str(e))
    except Exception as e:  # a decoder or model failure
        if not catch:
            raise
        log.error("unexpected error on %s:\n%s", source, traceback.format_exc())
        return Analysis(source, None, None, time.perf_counter() - t0, "internal_error", f"{type(e).__name__}: {e}")


def set_threads(threads: int, stages: Sequence[Stage]) -> None:
    """Bound this process's intra-op threads to ``threads`` (a worker's share of the
    cores), and each stage's model to its share of them."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by libraries loaded after this
    # torch reads OMP_NUM_THREADS when it is imported: only a torch already imported
    # needs telling. The default stages never import it (ONNX Runtime and CTranslate2),
    # and importing it here cost each worker 1.5 s and about 470 MB.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    for st in stages:
        st.set_threads(max(1, int(round(threads * st.thread_share))))
