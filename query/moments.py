"""The last stage of a search: scored segments -> moments (a video's best segment with
the adjacent ones scoring close to it, at most ``per_video`` per video), each with the
modalities that matched and a snippet of the evidence."""
from __future__ import annotations

from typing import Mapping

from engine.lexical import tokenize
from query.plan import Plan
from query.results import Hit
from query.scoring import Candidate

__all__ = ["moments", "snippet"]


def _groups(plan: Plan, cands: Mapping[int, Candidate], scores: Mapping[int, float]
            ) -> list[tuple[float, int, list[Candidate]]]:
    opts = plan.options
    by_video: dict[int, dict[int, Candidate]] = {}
    for c in cands.values():
        by_video.setdefault(c.seg.video, {})[c.seg.idx] = c
    out: list[tuple[float, int, list[Candidate]]] = []
    for vkey, segs in by_video.items():
        used: set[int] = set()
        taken = 0
        for best in sorted(segs.values(), key=lambda c: (-scores[c.id], c.id)):
            if best.seg.idx in used or taken >= opts.per_video:
                continue
            top = scores[best.id]
            group = [best]
            thr = top - abs(top) * (1 - opts.merge_ratio)
            for step in (-1, 1):
                j = best.seg.idx + step
                while j in segs and j not in used and scores[segs[j].id] >= thr:
                    group.append(segs[j])
                    j += step
            group.sort(key=lambda c: c.seg.idx)
            used.update(c.seg.idx for c in group)
            out.append((top, vkey, group))
            taken += 1
    out.sort(key=lambda m: (-m[0], m[1]))
    return out


def moments(plan: Plan, cands: Mapping[int, Candidate], cos: Mapping[int, Mapping[str, float]],
            scores: Mapping[int, float]) -> list[Hit]:
    """The top ``k`` moments of the plan, best first (ties by video key)."""
    weights = plan.weights
    terms = set(tokenize(plan.text))
    hits = []
    for score, _, group in _groups(plan, cands, scores)[: plan.options.k]:
        top = max(group, key=lambda c: scores[c.id])
        v = top.video
        matched = {m: round(s, 4) for m, s in sorted(cos[top.id].items()) if weights.get(m, 0) > 0}
        if top.bm25 > 0:
            matched["bm25"] = round(top.bm25, 4)
        if top.phrase:
            matched["phrase"] = 1.0
        hits.append(Hit(
            video_id=v.video_id, source=v.source, start=group[0].seg.start, end=group[-1].seg.end,
            score=float(score), matched=matched, snippet=snippet(top, cos[top.id], weights, terms), title=v.title,
            segment_ids=[c.id for c in group],
        ))
    return hits


def snippet(c: Candidate, cos: Mapping[str, float], weights: Mapping[str, float], terms: set[str],
            width: int = 160) -> str:
    """The evidence of the modality that contributed most to this segment's score."""
    seg = c.seg
    content = {"speech": seg.transcript, "ocr": seg.ocr_text,
               "visual": ", ".join(str(lab[0]) for lab in seg.labels[:5])}
    order = sorted(((weights.get(m, 0.0) * cos.get(m, 0.0), m) for m in content), reverse=True)
    if c.bm25 > 0 or c.phrase:  # an exact word hit is the clearest reason to show
        toks = set(tokenize(seg.transcript)) | set(tokenize(seg.ocr_text))
        if terms & toks:
            order = [(1.0, "speech" if terms & set(tokenize(seg.transcript)) else "ocr")] + order
    prefix = {"speech": "said: ", "ocr": "on screen: ", "visual": "seen: "}
    for _, m in order:
        if content[m]:
            text = content[m] if m == "visual" else _window(content[m], terms, width)
            return prefix[m] + text
    return ""


def _window(text: str, terms: set[str], width: int) -> str:
    if len(text) <= width:
        return text
    low = text.lower()
    pos = min((low.find(t) for t in terms if t and low.find(t) >= 0), default=0)
    start = max(0, pos - width // 3)
    out = text[start : start + width]
    return ("…" if start > 0 else "") + out + ("…" if start + width < len(text) else "")
