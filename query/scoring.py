"""The scoring stages of a search, in order: candidates -> exact scores -> fusion ->
rerank. Each takes what the stage before it returned and returns new values (dicts
keyed by segment id); none changes its inputs.

Scores are "fair" to missing modalities: a segment's dense score is the weighted mean
of the cosines of the modalities it HAS (sum w_m cos_m / sum w_m over present m), so a
silent video is not pushed down for lacking speech.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from engine.catalog import MODALITIES, SegmentRecord, VideoRecord
from engine.index import VideoIndex
from query.filters import containment, keep_segment, labels_pass, norm, phrase_occurs, trigrams
from query.fusion import get_fusion_method, rrf_top_ids
from query.plan import Plan
from query.retrieve import Retrieved

__all__ = ["Candidate", "Candidates", "gather", "exact_scores", "fuse", "neighbours", "rerank", "RERANK"]

# Rerank feature weights (added to the fused score of the top candidates).
RERANK = {
    "keyframe_mix": 0.5,  # visual cosine = mix of the segment mean and its best keyframe
    "neighbour": 0.10,  # x the best fused score of an adjacent segment of the same video
    "agreement": 0.03,  # x (number of weighted modalities with cosine > 0.35) - 1
    "phrase": 0.25,  # a quoted phrase occurs in the transcript, on-screen text or metadata
    "ocr_fuzzy": 0.15,  # x character-trigram containment of the query in OCR text x ocr weight
}
RRF_K = 60


@dataclass(frozen=True)
class Candidate:
    id: int
    seg: SegmentRecord
    video: VideoRecord
    bm25: float = 0.0  # its BM25 score (0: BM25 did not find it)
    phrase: bool = False  # every quoted phrase occurs in its speech or on-screen text


@dataclass(frozen=True)
class Candidates:
    by_id: dict[int, Candidate]
    phrase_missing: bool = False  # quoted phrases occur in no candidate: no hits


def _pool(plan: Plan, retrieved: Retrieved) -> dict[int, float]:
    """Candidate ids (dense runs first, then BM25) with their BM25 score, cut to the plan's
    candidate count by a cheap RRF of the runs."""
    pool: dict[int, float] = {}
    for run in retrieved.dense:
        for i, _ in run:
            pool.setdefault(i, 0.0)
    for i, s in retrieved.bm25:
        pool[i] = s
    for i, _ in retrieved.labels:
        pool.setdefault(i, 0.0)
    if len(pool) > plan.candidates:
        # The union of up to five dense runs and BM25 can be several hundred ids; exact
        # per-modality scoring reads their vectors, the costliest step at scale.
        keep = set(rrf_top_ids(retrieved.runs(), k=RRF_K, top=plan.candidates))
        pool = {i: s for i, s in pool.items() if i in keep}
    return pool


def gather(index: VideoIndex, plan: Plan, retrieved: Retrieved, videos) -> Candidates:
    """The retrieved ids (plus a named entity's segments) as candidates with their
    segment and video, after filters, negations and quoted phrases. ``videos``: a
    function from video keys to records (the searcher's cache)."""
    pool = _pool(plan, retrieved)
    if not pool:
        return Candidates({})
    if plan.entity is not None:  # the entity's moments compete even if no retriever found them
        for i in plan.entity.candidate_segments(index.catalog):
            pool.setdefault(i, 0.0)
    segs = index.segments(list(pool))
    recs = videos({segs[i].video for i in pool if i in segs})
    out: dict[int, Candidate] = {}
    for i, bm in pool.items():
        seg = segs.get(i)
        if seg is not None and keep_segment(seg, recs.get(seg.video), plan.parsed, plan.options.tenant):
            out[i] = Candidate(i, seg, recs[seg.video], bm)
    if plan.parsed.filters.has_labels and out:  # people>=2, object:dog...: the moment's frame labels
        labels = index.segment_labels(list(out))
        out = {i: c for i, c in out.items() if labels_pass(labels.get(i, {}), plan.parsed)}
    if not plan.parsed.phrases or not out:
        return Candidates(out)
    # Quoted phrases are required: each must occur in the segment's speech or on-screen
    # text (with a tolerance for transcription and OCR misreads: query.filters.phrase_occurs)
    # or verbatim in its video's title, description or tags. No candidate with them: no hits.
    phrases = [norm(p) for p in plan.parsed.phrases]
    kept = {i: Candidate(c.id, c.seg, c.video, c.bm25, True) for i, c in out.items() if _has_phrases(c, phrases)}
    return Candidates(kept, phrase_missing=not kept)


def _has_phrases(c: Candidate, phrases: list[str]) -> bool:
    said, shown = norm(c.seg.transcript), norm(c.seg.ocr_text)
    meta = norm(" ".join([c.video.title or "", c.video.description or "", " ".join(c.video.tags)]))
    return all(phrase_occurs(p, said) or phrase_occurs(p, shown) or phrase_occurs(p, meta, fuzzy=False)
               for p in phrases)


def exact_scores(index: VideoIndex, cands: Mapping[int, Candidate], blocks: dict[str, np.ndarray],
                 weights: Mapping[str, float], *, keyframes: bool, frames: str = "keyframes"
                 ) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
    """Per candidate: its cosine per modality (from the index's exact vectors; with
    ``keyframes``, the visual cosine mixes in its best-matching frame: of its keyframes,
    or with ``frames="seconds"`` of its 1 fps timeline frames) and its dense score (the
    weighted mean over the modalities it has). Returns (cosines, dense)."""
    ids = list(cands)
    cos: dict[int, dict[str, float]] = {i: {} for i in ids}
    mods = [m for m in MODALITIES if m in blocks]
    for m, vecs in index.modality_vectors(ids, mods).items():
        if not vecs:
            continue
        sids = list(vecs)
        sims = np.stack([vecs[i] for i in sids]) @ blocks[m]
        for sid, sim in zip(sids, sims.tolist()):
            cos[sid][m] = sim
    if keyframes and "visual" in blocks:
        mix = RERANK["keyframe_mix"]
        read = index.second_vectors if frames == "seconds" else index.keyframe_vectors
        for sid, fs in read(ids).items():
            best = max(float(v @ blocks["visual"]) for _, v in fs)
            if "visual" in cos[sid]:
                cos[sid]["visual"] = (1 - mix) * cos[sid]["visual"] + mix * best
    dense: dict[int, float] = {}
    for i, c in cos.items():
        num = sum(weights[m] * c[m] for m in c if weights.get(m, 0) > 0)
        den = sum(weights[m] for m in c if weights.get(m, 0) > 0)
        dense[i] = num / den if den > 0 else 0.0
    return cos, dense


def fuse(plan: Plan, cands: Mapping[int, Candidate], dense: Mapping[int, float], retrieved: Retrieved
         ) -> dict[int, float]:
    """The dense ranking (exact scores) and BM25 merged by the plan's fusion method,
    plus a named entity's boost."""
    runs, run_weights = [], []
    with_dense = "dense" in plan.retrievers
    if with_dense:
        runs.append(sorted(dense.items(), key=lambda x: (-x[1], x[0])))
        run_weights.append(plan.dense_share)
    if retrieved.bm25:
        runs.append([(i, s) for i, s in retrieved.bm25 if i in cands])
        run_weights.append(1.0 - plan.dense_share if with_dense else 1.0)
    if len(runs) == 1:
        fused = dict(runs[0])
    elif plan.fusion == "rrf":
        fused = dict(get_fusion_method("rrf")(runs, k=RRF_K))
    else:
        fused = dict(get_fusion_method(plan.fusion)(runs, weights=run_weights, normalisation="minmax"))
    out = {i: float(fused.get(i, 0.0)) for i in cands}
    if plan.entity is not None:
        for i, c in cands.items():
            out[i] += plan.entity.boost(c.seg.id, c.seg.video)
    return out


def neighbours(cands: Mapping[int, Candidate], fused: Mapping[int, float]) -> dict[int, float]:
    """Per candidate, the best fused score of an adjacent segment of the same video."""
    by_video: dict[int, list[Candidate]] = {}
    for c in cands.values():
        by_video.setdefault(c.seg.video, []).append(c)
    out: dict[int, float] = {}
    for group in by_video.values():
        group.sort(key=lambda c: c.seg.idx)
        for a, b in zip(group, group[1:]):
            if b.seg.idx == a.seg.idx + 1:
                out[a.id] = max(out.get(a.id, 0.0), fused[b.id])
                out[b.id] = max(out.get(b.id, 0.0), fused[a.id])
    return out


def rerank(plan: Plan, cands: Mapping[int, Candidate], cos: Mapping[int, Mapping[str, float]],
           fused: Mapping[int, float]) -> dict[int, float]:
    """Fused scores plus the rerank features (temporal neighbours, modality agreement,
    quoted phrases, fuzzy on-screen text)."""
    weights = plan.weights
    qgrams = trigrams(norm(plan.text))
    neighbour = neighbours(cands, fused)
    out: dict[int, float] = {}
    for i, c in cands.items():
        fuzzy = containment(qgrams, c.seg.ocr_text) if c.seg.ocr_text else 0.0
        agree = sum(1 for m, v in cos[i].items() if weights.get(m, 0) > 0.1 and v > 0.35)
        score = (
            fused[i]
            + RERANK["neighbour"] * neighbour.get(i, 0.0)
            + RERANK["agreement"] * max(0, agree - 1)
            + (RERANK["phrase"] if c.phrase else 0.0)
            + RERANK["ocr_fuzzy"] * fuzzy * weights.get("ocr", 0.0)
        )
        out[i] = score
    return out
