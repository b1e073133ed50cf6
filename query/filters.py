"""Filters and negations: which videos and segments a parsed query allows."""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timezone

from engine.catalog import SegmentRecord, VideoRecord
from engine.lexical import tokenize
from query.concepts import LABEL_FILTER_MIN
from query.parse import ParsedQuery

__all__ = ["norm", "trigrams", "containment", "phrase_occurs", "PHRASE_SIMILARITY", "video_passes", "keep_segment",
           "labels_pass", "LABEL_FILTER_MIN"]




def norm(s: str) -> str:
    """Lower case, NFKC, punctuation to spaces, runs of spaces to one."""
    s = unicodedata.normalize("NFKC", s).lower()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s)).strip()


def trigrams(s: str) -> set[str]:
    """Character trigrams of ``s`` with its spaces taken out (``norm`` it first)."""
    s = s.replace(" ", "")
    return {s[i : i + 3] for i in range(max(0, len(s) - 2))}


def containment(qgrams: set[str], text: str) -> float:
    """The share of a query's trigrams (``trigrams(norm(query))``) found in ``text``:
    a match that survives OCR's misread letters."""
    return len(qgrams & trigrams(norm(text))) / len(qgrams) if qgrams else 0.0


# A quoted phrase matches machine-made text (a transcript, OCR) when some run of its
# words is at least this similar to the phrase (difflib ratio of the normalised
# strings): Whisper writes "new-member" or drops a "the", OCR misreads a letter. A
# different phrase that shares words ("purple elephant" vs "purple elephants' trunk")
# is not that similar to any run. Exact text (titles, tags) must contain it verbatim.
PHRASE_SIMILARITY = 0.85
# Each differing character breaks at most three trigrams, so a run 0.85 alike keeps
# well over half of the phrase's trigrams; a segment with fewer is not checked further.
_PHRASE_TRIGRAMS = 0.5


def phrase_occurs(phrase: str, text: str, *, fuzzy: bool = True) -> bool:
    """Whether the normalised ``phrase`` (``norm``) occurs in the normalised ``text``:
    verbatim, or (``fuzzy``) as a run of words at least ``PHRASE_SIMILARITY`` alike."""
    if not phrase:
        return True
    if f" {phrase} " in f" {text} ":  # whole words: "cake" is not in "cakes"
        return True
    if not fuzzy or not text:
        return False
    words, n = text.split(), len(phrase.split())
    if n == 1 or not words:  # one word: verbatim only (a fuzzy word matches too much)
        return False
    # A run 0.85 alike keeps most of the phrase's character trigrams: a cheap test that
    # rules out almost every segment before the costly window comparison.
    if containment(trigrams(phrase), text) < _PHRASE_TRIGRAMS:
        return False
    from difflib import SequenceMatcher

    sm = SequenceMatcher(None, autojunk=False)
    sm.set_seq2(phrase)  # SequenceMatcher caches what it knows about seq2
    for size in {max(1, n - 1), n, n + 1}:
        for i in range(max(1, len(words) - size + 1)):
            sm.set_seq1(" ".join(words[i : i + size]))
            if sm.real_quick_ratio() >= PHRASE_SIMILARITY and sm.quick_ratio() >= PHRASE_SIMILARITY \
                    and sm.ratio() >= PHRASE_SIMILARITY:
                return True
    return False


def _video_date(v: VideoRecord) -> date:
    for key in ("date", "published", "recorded", "created"):
        val = v.extra.get(key)
        if isinstance(val, str):
            try:
                return date.fromisoformat(val[:10])
            except ValueError:
                continue
    return datetime.fromtimestamp(v.created_at, tz=timezone.utc).date()


def _technical_passes(v: VideoRecord, f) -> bool:
    if f.duration is not None and (v.duration is None or not f.duration.contains(v.duration)):
        return False
    if f.resolution is not None and not f.resolution.contains(min(v.width or 0, v.height or 0)):
        return False
    if f.fps is not None and (v.fps is None or not f.fps.contains(v.fps)):
        return False
    lang = (v.language or "").lower()
    if f.languages and lang not in f.languages:
        return False
    if f.exclude_languages and lang in f.exclude_languages:
        return False
    if f.after or f.before:
        d = _video_date(v)
        if (f.after and d < f.after) or (f.before and d > f.before):
            return False
    return True


def video_passes(v: VideoRecord, parsed: ParsedQuery) -> bool:
    """Whether the video satisfies every filter of the query (duration, resolution, fps,
    language, dates, tags, people, sources, has:/-has:, has:damage for a damaged video)."""
    f = parsed.filters
    if f.is_empty:
        return True
    if not _technical_passes(v, f):
        return False
    tags = {t.lower() for t in v.tags}
    if any(t.lower() not in tags for t in f.tags) or any(t.lower() in tags for t in f.exclude_tags):
        return False
    people = {p.lower() for p in v.people}
    if any(p.lower() not in people for p in f.people) or any(p.lower() in people for p in f.exclude_people):
        return False
    if f.sources and not any(v.source.startswith(s) for s in f.sources):
        return False
    if any(v.source.startswith(s) for s in f.exclude_sources):
        return False
    has = {"audio": v.has_audio, "speech": bool(v.stats.get("has_speech")), "text": bool(v.stats.get("has_text")),
           "damage": v.status == "damaged", "live": v.status == "live"}
    if any(not has.get(h, False) for h in f.has) or any(has.get(h, False) for h in f.has_not):
        return False
    return True


def keep_segment(seg: SegmentRecord, video: VideoRecord | None, parsed: ParsedQuery, tenant: str | None) -> bool:
    """Whether a candidate segment survives the tenant, the video filters and the query's
    negated terms and phrases (looked for in its speech, on-screen text, labels and the
    video's title, description and tags)."""
    if video is None:
        return False
    if tenant is not None and video.tenant != tenant:
        return False
    if not video_passes(video, parsed):
        return False
    if parsed.negated_terms or parsed.negated_phrases:
        hay = norm(" ".join([seg.transcript, seg.ocr_text, " ".join(str(x[0]) for x in seg.labels),
                             video.title or "", video.description or "", " ".join(video.tags)]))
        toks = set(tokenize(hay))
        if any(t in toks for term in parsed.negated_terms for t in tokenize(term)):
            return False
        if any(norm(p) in hay for p in parsed.negated_phrases):
            return False
    return True


def labels_pass(have: dict[tuple[str, str], float], parsed: ParsedQuery) -> bool:
    """Whether a segment's frame labels (``{(kind, label): score}``) satisfy the query's
    people count and label filters (``people>=2``, ``object:dog``, ``-style:cartoon``)."""
    f = parsed.filters
    shown = {k for k, s in have.items() if s >= LABEL_FILTER_MIN.get(k[0], 0.5)}
    if f.people_count is not None:
        counts = [int(lab) for kind, lab in shown if kind == "people"] or [0]
        if not f.people_count.contains(float(max(counts))):
            return False
    need = {tuple(x.split(":", 1)) for x in f.labels}
    if not need <= shown:
        return False
    return not any(tuple(x.split(":", 1)) in shown for x in f.exclude_labels)
