"""The last stage of a search: scored segments -> moments (a video's best segment with
the adjacent ones scoring close to it, at most ``per_video`` per video), each with the
modalities that matched and a snippet of the evidence."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from engine.lexical import tokenize
from query.boundaries import (
    NEAR, Range, lead_modalities, query_colours, quote_range, speech_ranges, spoken_clause, text_range, visual_range,
)
from query.filters import norm
from query.plan import Plan
from query.results import Hit
from query.scoring import Candidate

__all__ = ["moments", "snippet", "exact_ranges", "matched_evidence", "term_coverage", "highlight_spans",
           "MIN_MATCH", "MIN_WEIGHT"]


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
            scores: Mapping[int, float], *, blocks: Mapping[str, np.ndarray] | None = None,
            evidence=None) -> list[Hit]:
    """The top ``k`` moments of the plan, best first (ties by video key), at most
    ``per_video`` a video. With ``evidence`` (an object with ``timeline(video_key,
    start, end)``, ``words_between(video_key, start, end)`` and ``shots_of(video_key)``,
    e.g. the ``VideoIndex``) and the query's ``blocks``, each moment's range is cut from
    the evidence (``exact_ranges``), and one group of segments may give several moments
    (the words said again further on); else a moment is its segments' range."""
    opts = plan.options
    terms = set(tokenize(plan.text))
    out: list[tuple[float, int, int, Hit]] = []
    for n, (score, vkey, group) in enumerate(_groups(plan, cands, scores)[: opts.k]):
        top = max(group, key=lambda c: scores[c.id])
        seg_range = Range(group[0].seg.start, group[-1].seg.end, "segments")
        ranges = [seg_range]
        if evidence is not None and blocks is not None:
            ranges = exact_ranges(plan, blocks, top, cos[top.id], seg_range, terms, evidence) or [seg_range]
        for j, rng in enumerate(ranges):
            if top.video.duration:
                rng = Range(max(0.0, rng.start), min(float(top.video.duration), rng.end), rng.source, rng.text,
                            rng.weight)
            out.append((score * rng.weight if j else score, n, j,
                        _hit(plan, top, group, cos[top.id], rng, seg_range, score * rng.weight, terms)))
    out.sort(key=lambda x: (-x[0], x[1], x[2]))
    hits: list[Hit] = []
    per: dict[str, list[Hit]] = {}
    for _, _, _, h in out:
        mine = per.setdefault(h.video_id, [])
        if len(mine) >= opts.per_video or any(_overlap(h, o) > 0.3 for o in mine):
            continue
        mine.append(h)
        hits.append(h)
    return hits[: opts.k]


def _overlap(a: Hit, b: Hit) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


# A modality is listed in a hit's ``matched`` only when the query weighs it at least
# this much and its cosine similarity reaches MIN_MATCH: below that, MiniLM cosines are
# what unrelated text scores (0.0-0.2), i.e. no evidence, not a "match".
MIN_WEIGHT = 0.05
MIN_MATCH = 0.2


def matched_evidence(plan: Plan, c: Candidate, cos: Mapping[str, float], terms: set[str]) -> dict[str, float]:
    """What made this segment a match, each on one 0..1 scale (see ``Hit.matched``): the
    cosine of every modality the query weighs that reaches ``MIN_MATCH``, the share of
    the query's words the segment's text holds when the keyword index found it, and
    ``phrase`` when every quoted phrase occurs in it. Nothing that did not contribute."""
    out = {m: round(float(v), 4) for m, v in sorted(cos.items())
           if plan.weights.get(m, 0.0) >= MIN_WEIGHT and v >= MIN_MATCH}
    if c.bm25 > 0:
        cov = term_coverage(c, terms)
        if cov > 0:
            out["keywords"] = round(cov, 4)
    if c.phrase:
        out["phrase"] = 1.0
    return out


def term_coverage(c: Candidate, terms: set[str]) -> float:
    """The share of the query's words found in the segment's speech, on-screen text,
    visual labels or its video's title, description and tags."""
    if not terms:
        return 0.0
    v = c.video
    hay = set(tokenize(" ".join([c.seg.transcript, c.seg.ocr_text, " ".join(str(x[0]) for x in c.seg.labels),
                                 v.title or "", v.description or "", " ".join(v.tags)])))
    return len(terms & hay) / len(terms)


def highlight_spans(text: str, terms: set[str]) -> list[tuple[int, int]]:
    """``[start, end)`` offsets of the query's words in ``text``: a word that starts with
    a query word (``cake`` marks ``cakes``), or any occurrence for scripts written
    without spaces (Chinese, Japanese). Overlaps merged, in order."""
    # short Latin words (of, my, in) would mark half a sentence: only when they are all there is
    terms = {t for t in terms if not (t.isascii() and len(t) < 3)} or terms
    low = text.lower()
    if len(low) != len(text) or not terms:  # a case mapping that changes lengths: offsets would drift
        return []
    spans: list[tuple[int, int]] = []
    for t in terms:
        t = t.lower()
        if not t:
            continue
        spaced = not "\u3040" <= t[0] <= "\u9fff"  # kana and CJK ideographs: no spaces between words
        i = low.find(t)
        while i >= 0:
            if not spaced:
                spans.append((i, i + len(t)))
            elif i == 0 or not low[i - 1].isalnum():
                j = i + len(t)
                while j < len(low) and low[j].isalnum():
                    j += 1
                spans.append((i, j))
            i = low.find(t, i + len(t))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _hit(plan: Plan, top: Candidate, group: list[Candidate], cos: Mapping[str, float], rng: Range, seg: Range,
         score: float, terms: set[str]) -> Hit:
    matched = matched_evidence(plan, top, cos, terms)
    text = snippet(top, cos, plan.weights, terms)
    if rng.source == "words":
        text = "said: " + _window(rng.text, terms, 160)
    elif rng.source == "text":
        text = "on screen: " + _window(rng.text, terms, 160)
    mid = (rng.start + rng.end) / 2
    shown = next((c for c in group if c.seg.start <= mid < c.seg.end), top)
    v = top.video
    return Hit(video_id=v.video_id, source=v.source, start=rng.start, end=rng.end, score=float(score),
               matched=matched, snippet=text, title=v.title, segment_ids=[c.id for c in group],
               range_from=rng.source, segments_range=(seg.start, seg.end), top_segment=top.id,
               thumbnail_segment=shown.id, highlights=highlight_spans(text, terms), live=v.status == "live")


def exact_ranges(plan: Plan, blocks: Mapping[str, np.ndarray], top: Candidate, cos: Mapping[str, float],
                 seg: Range, terms: set[str], evidence) -> list[Range]:
    """The moment's range(s) from the video's evidence timeline, led by the modality
    that made the hit (see ``query.boundaries``): several only for speech found again
    further on, when ``per_video`` allows; [] when no evidence settles it."""
    lo, hi = seg.start - NEAR, seg.end + NEAR
    units = evidence.timeline(top.seg.video, lo, hi)
    if not units:
        return []
    quoted = [norm(p) for p in plan.parsed.phrases if norm(p)]
    phrase_in = {"speech": bool(quoted) and all(p in norm(top.seg.transcript) for p in quoted),
                 "ocr": bool(quoted) and all(p in norm(top.seg.ocr_text) for p in quoted)}
    seg_toks = {"speech": set(tokenize(top.seg.transcript)), "ocr": set(tokenize(top.seg.ocr_text))}
    share = {m: len(terms & t) / len(terms) if terms else 0.0 for m, t in seg_toks.items()}
    order = lead_modalities(plan.label, phrase_in, share)
    said = spoken_clause(plan.text)
    speech_terms = terms
    widen = False
    if said is not None:  # "... while she says X": X is matched against the speech
        speech_terms = set(tokenize(said))
        if order[0] != "speech":
            # what is seen leads this query; the moment must cover both: the words that
            # were said and the segments where the search saw the rest
            order = ["speech"] + [m for m in order if m != "speech"]
            widen = True
    for m in order:
        if m == "speech":
            if plan.parsed.phrases:
                words = evidence.words_between(top.seg.video, lo, hi)
                found = [r for p in plan.parsed.phrases if (r := quote_range(words, p)) is not None][:1]
                if found:
                    return found
            found = speech_ranges([u for u in units if u.kind == "phrase"], blocks.get("speech"), speech_terms,
                                  plan.parsed.phrases, plan.options.per_video)
            if found and widen:
                found = [Range(min(r.start, seg.start), max(r.end, seg.end), r.source, r.text, r.weight)
                         for r in found[:1]]
            if found:
                return found
        elif m == "ocr":
            rng = text_range([u for u in units if u.kind == "text"], blocks.get("ocr"), plan.text)
            if rng is not None:
                return [rng]
        else:
            rng = visual_range([u for u in units if u.kind == "visual"], blocks.get("visual"),
                               (seg.start, seg.end), evidence.shots_of(top.seg.video), query_colours(terms))
            if rng is not None:
                return [rng]
    return []


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
