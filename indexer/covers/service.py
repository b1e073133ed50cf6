"""Covers as a service: compute on first use, serve one variant per request through a
bandit, log impressions and clicks, render files lazily into the index directory.

Used by the HTTP routes (``api/routes_covers.py``) and, for storing, by ``vidseek
covers``. Files live in ``<index>/covers/<video_id>/<variant_id>_<W>x<H>.jpg`` and the
catalog row of each variant records them; the rows (scores, reasons, counts) are in
the catalog (``engine.covers.CoverStore``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.catalog import Catalog, VideoRecord
from engine.config import IndexConfig
from engine.covers import (
    Choice,
    ClickResult,
    CoverStore,
    CoverVariant,
    Impression,
    LinUCB,
    NewCoverVariant,
    ThompsonSampling,
    context_features,
    make_policy,
)
from engine.errors import InputError, NotFoundError
from indexer.covers.candidates import CoverOptions, CoverSet, compute_covers, render_variants
from indexer.covers.render import parse_aspect

__all__ = ["CoverService", "ServedCover", "store_cover_set", "COVER_WIDTH"]

COVER_WIDTH = 960
"""Width of the covers the service renders (the page shows them at most this wide)."""


def store_cover_set(store: CoverStore, video_key: int, cover_set: CoverSet) -> list[CoverVariant]:
    """Store the picked covers of ``cover_set`` as the video's variants (rank order)."""
    return store.replace_variants(video_key, [
        NewCoverVariant(
            t=c.t, score=c.score, parts=c.assessment.parts, reasons=c.assessment.reasons,
            box=c.assessment.content_box, faces=tuple(tuple(f) for f in c.assessment.faces),
            embedding=c.embedding,
        )
        for c in cover_set.picked
    ])


@dataclass(frozen=True)
class ServedCover:
    """One request's answer: the variant, the rendered file, the logged impression."""

    variant: CoverVariant
    path: Path
    impression: Impression
    choice: Choice


class CoverService:
    """Covers of one index directory, over a writable catalog connection of its own
    (the service's search handle is read-only). Thread-safe."""

    def __init__(self, index_dir: str | Path, *, options: CoverOptions | None = None,
                 thompson: ThompsonSampling | None = None, linucb: LinUCB | None = None,
                 seed: int | None = None, vector_source: Any = None) -> None:
        self.index_dir = Path(index_dir)
        self.catalog = Catalog(self.index_dir / "catalog.sqlite")
        # Segment vectors the catalog no longer holds (the vector store is their one copy,
        # engine.catalog.schema_vectors): ``vector_source(ids, modalities)``, e.g. the
        # open index's ``modality_vectors``. Without it covers lose the video-vector term.
        self.catalog.vector_source = vector_source
        self.store = CoverStore(self.catalog)
        self.options = options or CoverOptions()
        self.thompson = thompson or ThompsonSampling()
        self.linucb = linucb or LinUCB(fallback=self.thompson)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def close(self) -> None:
        self.catalog.close()

    def _lock(self, key: tuple[int, str]) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    # -- variants ----------------------------------------------------------------------
    def variants(self, video: VideoRecord, config: IndexConfig, *, compute: bool = True,
                 image_encoder: Any = None) -> list[CoverVariant]:
        """The video's variants, computing them first if there are none (one
        computation per video at a time; later callers wait and reuse it)."""
        found = self.store.variants(video.key)
        if found or not compute:
            return found
        with self._lock((video.key, "compute")):
            found = self.store.variants(video.key)
            if found:
                return found
            cover_set = compute_covers(self.catalog, video, config, options=self.options,
                                       image_encoder=image_encoder)
            return store_cover_set(self.store, video.key, cover_set)

    def cover_file(self, video: VideoRecord, variant: CoverVariant, aspect: str) -> Path:
        """The rendered JPEG of a variant at ``aspect``, rendered now if missing."""
        w, h = parse_aspect(aspect)
        aspect = f"{w}:{h}"
        rel = variant.files.get(aspect)
        if rel and (self.index_dir / rel).is_file():
            return self.index_dir / rel
        with self._lock((variant.id, aspect)):
            rel = f"covers/{video.video_id}/{variant.id}_{w}x{h}.jpg"
            path = self.index_dir / rel
            if not path.is_file():
                self._render(video, variant, aspect, path)
            self.store.set_file(variant.id, aspect, rel)
            return path

    def _render(self, video: VideoRecord, variant: CoverVariant, aspect: str, path: Path) -> None:
        from indexer.covers.candidates import Candidate
        from indexer.covers.quality import FrameAssessment
        from indexer.media import frames_at

        if not Path(video.source).is_file():
            raise NotFoundError(f"the media of video {video.video_id} is no longer on the server")
        # Stored times are rounded to the millisecond; half a millisecond more still
        # selects the same frame (frames_at returns the frame on screen at that time).
        _, rgb = next(iter(frames_at(video.source, [variant.t + 0.0005], size=1280)))
        box = tuple(int(x) for x in variant.box) if len(variant.box) == 4 else (0, 0, rgb.shape[1], rgb.shape[0])
        a = FrameAssessment(score=variant.score, reject=None, parts=variant.parts, reasons=variant.reasons,
                            content_box=box, faces=tuple(tuple(f) for f in variant.faces))
        cand = Candidate(t=variant.t, shot=0, assessment=a, rgb=rgb)
        files = render_variants([cand], path.parent, aspects=[aspect], width=COVER_WIDTH,
                                names=[path.name.rsplit("_", 1)[0]])
        produced = files[0][aspect]
        if produced != path:
            produced.replace(path)

    # -- serving -----------------------------------------------------------------------
    def choose(self, variants: Sequence[CoverVariant], *, context: np.ndarray | None = None,
               policy: str | None = None) -> Choice:
        """Pick a variant: LinUCB when a context vector is given, else Thompson
        sampling; ``policy`` names another (``random``, ``best_quality``)."""
        if not variants:
            raise InputError("no cover variants to choose from")
        arms = self.store.arm_states(variants)
        features = None
        if context is not None:
            embs = [v.embedding for v in variants]
            if any(e is None for e in embs):
                raise InputError("these covers have no content embeddings, so a context cannot be used",
                                 hint="recompute them with `vidseek covers`")
            features = context_features(context, np.stack(embs))
        if policy is None or policy == "auto":
            pol = self.linucb if features is not None else self.thompson
        elif policy == "thompson":
            pol = self.thompson
        elif policy == "linucb":
            pol = self.linucb
        else:
            pol = make_policy(policy)
        with self._rng_lock:
            return pol.choose(arms, features, self._rng)

    def serve(self, video: VideoRecord, config: IndexConfig, *, aspect: str = "16:9",
              context: np.ndarray | None = None, policy: str | None = None, tenant: str = "default",
              user: str | None = None, image_encoder: Any = None) -> ServedCover:
        """Choose a cover, make sure its file exists, log the impression."""
        variants = self.variants(video, config, image_encoder=image_encoder)
        choice = self.choose(variants, context=context, policy=policy)
        variant = variants[choice.arm]
        path = self.cover_file(video, variant, aspect)
        imp = self.store.record_impression(variant.id, policy=choice.policy, propensity=choice.propensity,
                                           features=choice.features, tenant=tenant, user_key=user)
        return ServedCover(variant, path, imp, choice)

    def click(self, *, tenant: str, impression: str | None = None, video: VideoRecord | None = None,
              variant_id: int | None = None) -> ClickResult:
        """Record a click on an impression, or on the latest unclicked impression of a
        variant of ``video`` (clicks never outnumber impressions)."""
        if impression:
            return self.store.record_click(impression, tenant=tenant)
        if video is None or variant_id is None:
            raise InputError("a click names an 'impression', or a 'video_id' and its 'variant_id'")
        v = self.store.variant(variant_id)
        if v.video != video.key:
            raise NotFoundError(f"video {video.video_id} has no cover variant {variant_id}")
        token = self.store.latest_unclicked(variant_id, tenant=tenant)
        if token is None:
            raise InputError(f"cover variant {variant_id} has no unclicked impression to attach the click to",
                             hint="send the impression id from the X-Cover-Impression header instead")
        return self.store.record_click(token, tenant=tenant)
