"""Cover candidates of an indexed video: sample frames per shot, score them, pick K varied ones.

Reader, mapper, writer, like the indexer:

1. :func:`candidate_times` spreads a few times over every shot of the catalog (not
   only its first keyframe), away from the cuts where transitions live.
2. :func:`assess_candidates` decodes them (and neighbours half a second either side
   for the transition rule), runs the cheap :func:`assess_frame` on all, then the
   face and NSFW models and the visual encoder on the best few, and scores
   representativeness: the cosine of a frame's visual embedding to the mean of the
   video's stored visual vectors.
3. :func:`select_covers` picks K by maximal marginal relevance over score and
   embedding similarity, so the covers differ from each other.

:func:`compute_covers` runs the three and :func:`render_variants` writes the JPEGs;
the service and ``vidseek covers`` both call them.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.catalog import Catalog, VideoRecord
from engine.config import IndexConfig
from engine.errors import InputError, NotFoundError
from indexer.covers.quality import FrameAssessment, Thresholds, assess_frame, combine_parts, load_thresholds
from indexer.covers.render import ASPECTS, Template, parse_aspect, render_cover

__all__ = [
    "CoverOptions",
    "Candidate",
    "CoverSet",
    "candidate_times",
    "assess_candidates",
    "select_covers",
    "compute_covers",
    "render_variants",
]

log = logging.getLogger(__name__)

# Frames are decoded at most this large: enough for a 1280-wide cover.
_DECODE_SIDE = 1280
_NEIGHBOUR_SIDE = 320
_NEIGHBOUR_GAP_S = 0.5


@dataclass(frozen=True)
class CoverOptions:
    """How covers are picked. ``per_shot`` frames per shot at most
    ``max_candidates`` in all; the face/NSFW models and the visual encoder run on the
    ``deep`` best candidates by cheap score; ``mmr_lambda`` trades quality (1.0)
    against variety (0.0). ``nsfw`` is "auto" (use NudeNet when installed), True or
    False."""

    k: int = 4
    per_shot: int = 3
    max_candidates: int = 36
    deep: int = 12
    faces: bool = True
    nsfw: bool | str = "auto"
    mmr_lambda: float = 0.7
    thresholds: Thresholds | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 16:
            raise InputError(f"k must be in 1..16 covers, got {self.k}")
        if not 1 <= self.per_shot <= 10 or not 1 <= self.max_candidates <= 500 or self.deep < 1:
            raise InputError("per_shot must be in 1..10, max_candidates in 1..500, deep >= 1")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise InputError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.nsfw not in (True, False, "auto"):
            raise InputError(f"nsfw must be true, false or 'auto', got {self.nsfw!r}")


@dataclass(frozen=True)
class Candidate:
    """One scored frame. ``rgb`` is the decoded frame (kept for rendering; left out
    of repr and equality)."""

    t: float
    shot: int
    assessment: FrameAssessment
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    rgb: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float:
        return self.assessment.score

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "shot": self.shot, **self.assessment.as_dict()}


@dataclass(frozen=True)
class CoverSet:
    """The picked covers (rank order) and every candidate considered."""

    video_id: str
    picked: list[Candidate]
    candidates: list[Candidate]

    def as_dict(self) -> dict:
        rejected: dict[str, int] = {}
        for c in self.candidates:
            if c.assessment.reject:
                rejected[c.assessment.reject] = rejected.get(c.assessment.reject, 0) + 1
        return {
            "video_id": self.video_id,
            "covers": [{"rank": i, **c.as_dict()} for i, c in enumerate(self.picked)],
            "candidates": [c.as_dict() for c in self.candidates],
            "rejected": rejected,
        }


def candidate_times(
    shots: Sequence[tuple[float, float]], duration: float | None, *, per_shot: int = 3, max_candidates: int = 36,
) -> list[tuple[float, int]]:
    """(time, shot index) pairs, ascending: ``per_shot`` times inside each shot at
    evenly spaced fractions that avoid its first and last 10% (transitions sit at the
    cuts). Short shots get fewer; when there are too many, the candidates are thinned
    evenly over the video so every part of it stays represented. Without shots the
    whole video counts as one shot."""
    spans = [(float(a), float(b)) for a, b in shots if b > a]
    if not spans:
        if not duration or duration <= 0:
            raise InputError("the video has neither shots nor a duration", hint="re-index it")
        spans = [(0.0, float(duration))]
    out: list[tuple[float, int]] = []
    for i, (a, b) in enumerate(spans):
        n = max(1, min(per_shot, int((b - a) / 0.5)))
        for j in range(n):
            frac = 0.1 + 0.8 * (j + 0.5) / n
            out.append((a + frac * (b - a), i))
    out.sort()
    if len(out) > max_candidates:
        idx = np.linspace(0, len(out) - 1, max_candidates).round().astype(int)
        out = [out[i] for i in sorted(set(idx.tolist()))]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def assess_candidates(
    source: str,
    times: Sequence[tuple[float, int]],
    *,
    options: CoverOptions,
    video_vector: np.ndarray | None = None,
    image_encoder: Any = None,
) -> list[Candidate]:
    """Decode and score the candidate frames (see the module docstring)."""
    from indexer.media import frames_at

    th = options.thresholds or load_thresholds()
    wanted = [t for t, _ in times]
    frames = list(frames_at(source, wanted, size=_DECODE_SIDE))
    around = sorted({max(0.0, t - _NEIGHBOUR_GAP_S) for t in wanted} | {t + _NEIGHBOUR_GAP_S for t in wanted})
    small = {round(t, 4): rgb for t, rgb in zip(around, (f for _, f in frames_at(source, around,
                                                                                 size=_NEIGHBOUR_SIDE)))}
    cands: list[Candidate] = []
    for (t_want, shot), (t_got, rgb) in zip(times, frames):
        prev = small.get(round(max(0.0, t_want - _NEIGHBOUR_GAP_S), 4))
        nxt = small.get(round(t_want + _NEIGHBOUR_GAP_S, 4))
        nb = (prev, nxt) if prev is not None and nxt is not None else None
        a = assess_frame(rgb, neighbours=nb, thresholds=th)
        cands.append(Candidate(t=float(t_got), shot=shot, assessment=a, rgb=rgb))

    # Two candidates can land on the same decoded frame (short shots, sparse frames).
    seen: set[int] = set()
    unique = []
    for c in cands:
        key = int(round(c.t * 1000))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    cands = unique

    order = sorted(range(len(cands)), key=lambda i: (cands[i].assessment.reject is not None, -cands[i].score))
    deep = order[: options.deep]
    use_nsfw = options.nsfw is True or (options.nsfw == "auto" and _nudenet_installed())
    embeddings: dict[int, np.ndarray] = {}
    if image_encoder is not None and deep:
        vecs = image_encoder.encode_images([cands[i].rgb for i in deep])
        embeddings = {i: np.asarray(v, dtype=np.float32) for i, v in zip(deep, vecs)}
    ref = None
    if video_vector is not None and np.linalg.norm(video_vector) > 0:
        ref = _unit(np.asarray(video_vector, dtype=np.float32))
    elif len(embeddings) >= 2:
        ref = _unit(np.mean(list(embeddings.values()), axis=0))
    for i in deep:
        c = cands[i]
        a = assess_frame(c.rgb, faces=options.faces, nsfw=use_nsfw, thresholds=th,
                         neighbours=None) if (options.faces or use_nsfw) else c.assessment
        parts = dict(a.parts)
        reasons = list(a.reasons)
        measures = dict(c.assessment.measures)
        measures.update({k: v for k, v in a.measures.items() if k in ("faces", "face_area", "unsafe")})
        reject = c.assessment.reject or a.reject
        if reject and not c.assessment.reject:
            reasons = [r for r in reasons if not r.startswith("rejected:")]
            reasons.insert(0, next(r for r in a.reasons if r.startswith("rejected:")))
        elif c.assessment.reject:
            reasons = [r for r in reasons if not r.startswith("rejected:")]
            reasons.insert(0, c.assessment.reasons[0])
        emb = embeddings.get(i)
        if emb is not None and ref is not None:
            cos = float(np.dot(_unit(emb), ref))
            parts["representativeness"] = float(min(1.0, max(0.0, cos)))
            reasons.append(f"similarity to the whole video {cos:.2f}")
        new = replace(a, score=combine_parts(parts, reject), reject=reject, parts=parts, reasons=reasons,
                      measures=measures)
        cands[i] = replace(c, assessment=new, embedding=emb)
    return cands


def _nudenet_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("nudenet") is not None


def select_covers(cands: Sequence[Candidate], k: int, *, mmr_lambda: float = 0.7) -> list[Candidate]:
    """K covers by maximal marginal relevance: each next pick maximises
    ``lambda * score - (1 - lambda) * max similarity to the picks so far``, where the
    similarity is the embedding cosine (1.0 for another frame of the same shot when
    there is no embedding). Rejected frames come only when too few pass."""
    pool = [c for c in cands if c.assessment.reject is None]
    if len(pool) < k:
        rest = sorted((c for c in cands if c.assessment.reject is not None), key=lambda c: -c.score)
        pool += rest[: k - len(pool)]
    picked: list[Candidate] = []
    while pool and len(picked) < k:
        best, best_val = 0, -math.inf
        for i, c in enumerate(pool):
            sim = max((_similarity(c, p) for p in picked), default=0.0)
            val = mmr_lambda * c.score - (1.0 - mmr_lambda) * sim
            if val > best_val:
                best, best_val = i, val
        picked.append(pool.pop(best))
    return picked


def _similarity(a: Candidate, b: Candidate) -> float:
    if a.embedding is not None and b.embedding is not None:
        s = float(np.dot(_unit(a.embedding), _unit(b.embedding)))
        # Frames of one shot look alike even when the classifier is unsure.
        return max(s, 0.9) if a.shot == b.shot else s
    return 1.0 if a.shot == b.shot else 0.3


def compute_covers(
    catalog: Catalog,
    video: VideoRecord,
    config: IndexConfig,
    *,
    options: CoverOptions | None = None,
    image_encoder: Any = None,
) -> CoverSet:
    """Candidates, scores and the K picked covers of an indexed video.

    ``image_encoder`` defaults to the index's own (``config.image_encoder``), so the
    cover embeddings live in the space of the stored visual vectors and of the
    query encoder's text (the contextual bandit compares them with a context text).
    """
    options = options or CoverOptions()
    if not os.path.isfile(video.source):
        raise NotFoundError(f"the media of video {video.video_id} ({video.source}) is no longer there",
                            hint="covers are made from the original file; restore it or re-index")
    if image_encoder is None:
        from engine.models.registry import get_image_encoder

        image_encoder = get_image_encoder(config.image_encoder, **config.image_options)
    segs = catalog.segments_of(video.key)
    vecs = catalog.vectors([s.id for s in segs], "visual")
    video_vector = _unit(np.mean(list(vecs.values()), axis=0)) if vecs else None
    times = candidate_times(catalog.shots_of(video.key), video.duration, per_shot=options.per_shot,
                            max_candidates=options.max_candidates)
    cands = assess_candidates(video.source, times, options=options, video_vector=video_vector,
                              image_encoder=image_encoder)
    if not cands:
        raise NotFoundError(f"no frame of video {video.video_id} could be decoded for covers")
    picked = select_covers(cands, options.k, mmr_lambda=options.mmr_lambda)
    return CoverSet(video.video_id, picked, cands)


def _atomic_save(img, path: Path, quality: int = 88) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cover-", suffix=".jpg", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format="JPEG", quality=quality, optimize=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def render_variants(
    picked: Sequence[Candidate],
    out_dir: str | Path,
    *,
    aspects: Sequence[str] = ASPECTS,
    enhance: bool = True,
    template: Template | None = None,
    title: str | None = None,
    width: int | None = 1280,
    names: Sequence[str] | None = None,
) -> list[dict[str, Path]]:
    """Write one JPEG per picked cover and aspect into ``out_dir`` (atomically);
    returns, per cover, {aspect: path}. ``names`` are file-name stems per cover
    (default ``cover<rank>``)."""
    for a in aspects:
        parse_aspect(a)
    out = Path(out_dir)
    result: list[dict[str, Path]] = []
    for rank, c in enumerate(picked):
        if c.rgb is None:
            raise InputError(f"cover candidate at {c.t:.2f} s has no decoded frame to render")
        stem = names[rank] if names else f"cover{rank}"
        files: dict[str, Path] = {}
        for aspect in aspects:
            img, _ = render_cover(c.rgb, aspect, content_box=c.assessment.content_box,
                                  faces=c.assessment.faces, enhance=enhance, template=template, title=title,
                                  width=width)
            path = out / f"{stem}_{aspect.replace(':', 'x')}.jpg"
            _atomic_save(img, path)
            files[aspect] = path
        result.append(files)
    return result
