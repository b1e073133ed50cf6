"""Moment boundaries from the evidence, not from segment windows.

A hit's segments say roughly where the moment is; its exact range comes from the
video's evidence timeline (``engine.catalog.TimelineUnit``, written at ingest by
``indexer.stages.timeline``), led by the modality that made the hit:

- **speech**: a quoted phrase's own words, widened to its sentence (within limits);
  else the spoken phrases that match the query (its words and its meaning), contiguous,
  from the first word to the last, padded into the pauses;
- **on-screen text**: the span during which the matching text is on screen;
- **visual**: the run of 1-second frames around the best one whose similarity to the
  query stays above a level relative to the peak, snapped to a shot boundary nearby.

Without usable evidence (an index built before timelines, or nothing that matches
well enough) the range stays the segments'. Pure functions: the caller reads units.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from engine.catalog import TimelineUnit
from engine.catalog.schema_timeline import COLOURS
from engine.lexical import tokenize
from query.filters import containment, norm, trigrams

__all__ = ["Range", "speech_range", "speech_ranges", "quote_range", "text_range", "visual_range", "query_colours",
           "lead_modalities", "spoken_clause", "NEAR"]

NEAR = 3.0  # s around the hit's segments where its evidence is looked for
LEXICAL = 0.5  # weight of the share of query words a unit contains, beside its cosine
EXTEND = 0.75  # a neighbouring text span joins the moment when it scores this share of the best
BASELINE = 0.5  # phrases above max(median, this x the best) count for a spoken moment
MAX_GAP = 3.0  # s: units further apart than this are separate moments
TOGETHER = 0.1  # s: text units on screen together this long are one moment's (_chain)
ABUT = 0.05  # s: a text unit starting this close to where another ends took its place (_chain)
PAD = 0.25  # s of pause kept around spoken words, at most half the gap to the next
MIN_SPEECH_COS = 0.25  # a phrase with no query word must be at least this close in meaning
SNAP = 1.0  # s: a visual run whose edges are this close to its shot's becomes the shot
DISTINCT = 0.15  # a frame stands out when its cosine is this far above the neighbourhood's median
VISUAL_LEVEL = 0.5  # a frame stays in the run above floor + this x (peak - floor)
MIN_LEN = 1.0  # s
# s: a visual moment is at least this long (inside its shot). The 1 fps frames' ImageNet
# evidence cannot place an event to the second, and the judged visual windows run 1-20 s
# (median about 4). Measured given the right clip (python -m benchmarks.bench_moments):
# written visual R1@IoU0.5 0.44 -> 0.52 (1 s -> 4 s; 3 s 0.48, 5 s 0.56 with IoU0.7 down),
# public 0.20 -> 0.40.
VISUAL_MIN = 4.0
AGAIN = 0.8  # a second spoken stretch in a hit's reach is its own moment at this share of the best
WORD_SHARE = 0.5  # this share of the query's words in a segment's speech (or text) leads by it
SENTENCE_REACH = 3.0  # s: a quoted phrase's moment widens at most this far to its clause's ends
ANSWER_GAP = 1.0  # s: a short reply this soon after a question in a spoken moment belongs to it
ANSWER_WORDS = 3  # words: a reply this short ("No.", "Not yet.") is an answer, not a new turn
PAUSE_END = 0.5  # s of silence that ends a sentence


# Colour words of queries -> the colour names frames carry (COLOURS).
_COLOUR_WORDS = {"gray": "grey", "crimson": "red", "scarlet": "red", "violet": "purple", "magenta": "pink",
                 "turquoise": "cyan", "teal": "cyan", "golden": "yellow", "gold": "yellow"}


@dataclass(frozen=True)
class Range:
    start: float
    end: float
    source: str  # words | text | visual | shot | segments
    text: str = ""  # the phrases or on-screen text that set it
    weight: float = 1.0  # a further moment of the same hit: its evidence relative to the best one


def _cos(units: Sequence[TimelineUnit], q: np.ndarray | None) -> np.ndarray:
    if q is None or not units:
        return np.zeros(len(units), dtype=np.float32)
    vecs = np.stack([u.vector if u.vector is not None else np.zeros_like(q) for u in units])
    return vecs @ q


def _run(scores: np.ndarray, best: int, units: Sequence[TimelineUnit], level: float) -> tuple[int, int]:
    """The contiguous run of units around ``best`` scoring at least ``level`` with no
    gap over MAX_GAP between neighbours."""
    lo = hi = best
    while lo > 0 and scores[lo - 1] >= level and units[lo].start - units[lo - 1].end <= MAX_GAP:
        lo -= 1
    while hi + 1 < len(units) and scores[hi + 1] >= level and units[hi + 1].start - units[hi].end <= MAX_GAP:
        hi += 1
    return lo, hi


def _max_run(weights: np.ndarray, best: int, units: Sequence[TimelineUnit]) -> tuple[int, int]:
    """The contiguous run of units containing ``best`` with the largest sum of
    ``weights`` (units above the baseline count for it, below it against), never across
    a silence longer than MAX_GAP."""
    lo = hi = best
    total = run_total = float(weights[best])
    i = best
    while i > 0 and units[i].start - units[i - 1].end <= MAX_GAP:  # grow left while it pays
        i -= 1
        run_total += float(weights[i])
        if run_total > total:
            total, lo = run_total, i
    run_total, i = total, best
    while i + 1 < len(units) and units[i + 1].start - units[i].end <= MAX_GAP:
        i += 1
        run_total += float(weights[i])
        if run_total > total:
            total, hi = run_total, i
    return lo, hi


def speech_ranges(units: Sequence[TimelineUnit], q: np.ndarray | None, terms: set[str],
                  phrases: Sequence[str] = (), limit: int = 1) -> list[Range]:
    """The matching spoken stretches (``units``: ``phrase`` units in time order), best
    first, at most ``limit``: each the run around a best phrase whose phrases score
    above the baseline (the larger of the nearby phrases' median and half the best) by
    more in sum than those below it. A further stretch (a speaker coming back to the
    words) counts when its best phrase scores at least AGAIN x the first's and it lies
    more than MAX_GAP away from the stretches before it; its ``weight`` is that ratio."""
    if not units:
        return []
    cos = _cos(units, q)
    toks = [set(tokenize(u.text)) for u in units]
    lex = np.array([len(terms & t) / len(terms) if terms else 0.0 for t in toks], dtype=np.float32)
    quoted = [norm(p) for p in phrases if norm(p)]
    exact = np.array([1.0 if quoted and any(p in norm(u.text) for p in quoted) else 0.0 for u in units],
                     dtype=np.float32)
    scores = cos + LEXICAL * lex + exact
    first = int(np.argmax(scores))
    if lex[first] == 0 and exact[first] == 0 and cos[first] < MIN_SPEECH_COS:
        return []
    baseline = max(float(np.median(scores)), BASELINE * float(scores[first]))
    out: list[Range] = []
    free = np.ones(len(units), dtype=bool)
    best = first
    while True:
        lo, hi = _max_run(scores - baseline, best, units)
        while hi + 1 < len(units) and _answers(units[hi], units[hi + 1]):  # a question keeps its answer
            hi += 1
        before = units[lo].start - units[lo - 1].end if lo > 0 else 2 * PAD
        after = units[hi + 1].start - units[hi].end if hi + 1 < len(units) else 2 * PAD
        start = units[lo].start - min(PAD, max(before, 0.0) / 2)
        end = units[hi].end + min(PAD, max(after, 0.0) / 2)
        out.append(Range(max(0.0, start), end, "words", " ".join(u.text for u in units[lo : hi + 1]),
                         float(scores[best] / scores[first]) if scores[first] > 0 else 1.0))
        for i in range(len(units)):  # this stretch and its surroundings are taken
            if units[i].end >= units[lo].start - MAX_GAP and units[i].start <= units[hi].end + MAX_GAP:
                free[i] = False
        if len(out) >= limit or not free.any():
            return out
        best = int(np.argmax(np.where(free, scores, -np.inf)))
        if scores[best] < AGAIN * scores[first] or (lex[best] == 0 and exact[best] == 0):
            return out


def _answers(question: TimelineUnit, reply: TimelineUnit) -> bool:
    """``reply`` is the short answer to ``question`` (a phrase ending in a question mark,
    answered within ANSWER_GAP s in at most ANSWER_WORDS words): the exchange is one moment."""
    return (question.text.rstrip(" \"'\u201d\u2019)").endswith(("?", "\uff1f"))
            and 0.0 <= reply.start - question.end <= ANSWER_GAP
            and 0 < len(reply.text.split()) <= ANSWER_WORDS)


def speech_range(units: Sequence[TimelineUnit], q: np.ndarray | None, terms: set[str],
                 phrases: Sequence[str] = ()) -> Range | None:
    """The best matching spoken stretch (see ``speech_ranges``), or None."""
    found = speech_ranges(units, q, terms, phrases, 1)
    return found[0] if found else None


# Where a clause ends: sentence punctuation, and commas, semicolons and colons.
_CLAUSE_END = (".", "?", "!", ",", ";", ":", "\u3002", "\uff1f", "\uff01", "\u2026", "\uff0c", "\u3001", "\uff1b")
# Words that open a new clause where a transcript has no comma before them (Whisper
# often leaves it out: "... would have been grown but we now can go back ..."). Only
# words that cannot sit inside a clause as an adverb ("so", "yet" can: "so good",
# "ready yet"); English only: other languages end clauses at punctuation and pauses.
_CLAUSE_OPENERS = frozenset({"but", "because", "although", "though", "whereas", "unless", "however"})


def quote_range(words: Sequence[Sequence], quote: str) -> Range | None:
    """Where a quoted phrase was said: its words (``[[start, end, word], ...]`` in time
    order) widened to the clause around them, by at most SENTENCE_REACH seconds on each
    side (a clause ends at punctuation, commas included, or a pause of PAUSE_END s, and
    begins at a word that opens one, ``_CLAUSE_OPENERS``)."""
    want = tokenize(quote)
    if not want or not words:
        return None
    stream = [(tok, i) for i, w in enumerate(words) for tok in tokenize(str(w[2]))]
    toks = [t for t, _ in stream]
    n = len(want)
    at = next((j for j in range(len(toks) - n + 1) if toks[j : j + n] == want), None)
    if at is None:
        return None
    i0, i1 = stream[at][1], stream[at + n - 1][1]
    first, last = float(words[i0][0]), float(words[i1][1])

    def ends_sentence(i: int) -> bool:
        return str(words[i][2]).strip().endswith(_CLAUSE_END)

    def opens_clause(i: int) -> bool:
        return str(words[i][2]).strip().lower() in _CLAUSE_OPENERS

    while (i0 > 0 and not ends_sentence(i0 - 1) and not opens_clause(i0)
           and float(words[i0][0]) - float(words[i0 - 1][1]) < PAUSE_END
           and float(words[i0 - 1][0]) >= first - SENTENCE_REACH):
        i0 -= 1
    while (i1 + 1 < len(words) and not ends_sentence(i1) and not opens_clause(i1 + 1)
           and float(words[i1 + 1][0]) - float(words[i1][1]) < PAUSE_END
           and float(words[i1 + 1][1]) <= last + SENTENCE_REACH):
        i1 += 1
    start, end = float(words[i0][0]), float(words[i1][1])
    text = "".join(str(w[2]) for w in words[i0 : i1 + 1]).strip()
    return Range(max(0.0, start - PAD / 2), end + PAD / 2, "words", text)


def text_range(units: Sequence[TimelineUnit], q: np.ndarray | None, text: str) -> Range | None:
    """The span the matching on-screen text is shown (``units``: ``text`` units in time
    order). OCR misreads letters, so the query is matched by meaning and by character
    trigrams."""
    if not units:
        return None
    cos = _cos(units, q)
    qg = trigrams(norm(text))
    fuzzy = np.array([containment(qg, u.text) for u in units], dtype=np.float32)
    scores = cos + fuzzy
    best = int(np.argmax(scores))
    keep = _chain(units, scores >= EXTEND * float(scores[best]), best)
    return Range(min(units[i].start for i in keep), max(units[i].end for i in keep), "text",
                 " | ".join(dict.fromkeys(units[i].text for i in keep)))


def _chain(units: Sequence[TimelineUnit], ok: np.ndarray, best: int) -> list[int]:
    """The units marked ``ok`` that connect to ``best`` in time: each on screen at least
    TOGETHER s within the span the chain covers so far, or apart from it by a gap of at
    most MAX_GAP. Lines of text shown together (a title in two lines, a word read apart
    from its neighbour, each tracked for a while) are listed one after the other by
    their start and interleave with lines that do not match; what joins them is their
    time on screen, not their place in the list. A line that starts as another ends
    (within ABUT s) took its place, as the next subtitle does: its own moment. Until
    session 8 it joined, and "subtitle 'American version...'" took the subtitle before
    it ("-Do a different version", which also says "version") into its moment."""
    keep = [best]
    lo, hi = units[best].start, units[best].end
    grew = True
    while grew:
        grew = False
        for i, u in enumerate(units):
            shared = min(u.end, hi) - max(u.start, lo)  # < 0: the gap between them
            if ok[i] and i not in keep and (shared >= TOGETHER or -MAX_GAP <= shared < -ABUT):
                keep.append(i)
                lo, hi = min(lo, u.start), max(hi, u.end)
                grew = True
    return sorted(keep)


def _shot_at(t: float, shots: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    return next(((a, b) for a, b in shots if a - 1e-6 <= t < b), None)


def _filled_shot(start: float, end: float, shot: tuple[float, float] | None) -> Range | None:
    """The shot, when a run of frames fills it to within SNAP at both ends."""
    if shot is not None and abs(start - shot[0]) <= SNAP and abs(end - shot[1]) <= SNAP:
        return Range(shot[0], shot[1], "shot")
    return None


def _at_least(start: float, end: float, shot: tuple[float, float] | None) -> tuple[float, float]:
    """A visual run widened about its middle to VISUAL_MIN s, kept inside its shot
    (moved within it, or the whole shot when that is shorter)."""
    if end - start >= VISUAL_MIN:
        return start, end
    lo, hi = shot if shot is not None else (0.0, float("inf"))
    mid = 0.5 * (start + end)
    a, b = mid - VISUAL_MIN / 2, mid + VISUAL_MIN / 2
    if a < lo:
        a, b = lo, min(hi, lo + VISUAL_MIN)
    elif b > hi:
        a, b = max(lo, hi - VISUAL_MIN), hi
    return max(0.0, a), b


def query_colours(terms: set[str]) -> list[str]:
    """The basic colour names a query's words name (``indexer.colours`` names)."""
    out = []
    for t in sorted(terms):
        name = _COLOUR_WORDS.get(t, t)
        if name in COLOURS and name not in out:
            out.append(name)
    return out


def visual_range(units: Sequence[TimelineUnit], q: np.ndarray | None, around: tuple[float, float],
                 shots: Sequence[tuple[float, float]], colours: Sequence[str] = ()) -> Range | None:
    """A visual moment inside ``around`` (the hit's segments).

    When the query names colours and frames inside ``around`` show them all (their
    colour names, ``indexer.colours``), the moment is the run of frames that show any of
    them around the best such frame, or its shot when the run fills it (a frame names
    only its dominant colours: "a green meadow under a pink sky" shows pink among them
    only where the sky fills the frame).

    When one frame stands out from the rest of the neighbourhood (its similarity to
    the query at least DISTINCT above the median), the moment is the run of frames
    around it above floor + VISUAL_LEVEL x (peak - floor), widened to the shot(s) it
    lies in when their edges are within SNAP. Otherwise, when the segments span
    several shots, it is the shot holding the best frame (clipped to the segments);
    else None (the segments' range stands). Frame-level visual evidence here is an
    ImageNet classifier's view of a small frame: often too weak to cut finer."""
    if not units or q is None:
        return None
    cos = _cos(units, q)
    inside = [i for i, u in enumerate(units) if around[0] - 1e-6 <= u.start < around[1]]
    if not inside:
        return None
    if colours:  # the query names colours: the frames that show them all
        wanted, named = set(colours), [set(u.text.split()) for u in units]
        has = np.array([wanted <= n for n in named], dtype=np.float32)
        some = np.array([bool(wanted & n) for n in named], dtype=np.float32)
        shown = [i for i in inside if has[i]]
        if shown:
            best = max(shown, key=lambda i: cos[i])
            lo, hi = _run(some, best, units, 1.0)
            # a run of a colour across a cut is two scenes that share a colour: it stays
            # in the shot of its best frame
            shot = _shot_at(units[best].start, shots)
            start, end = units[lo].start, units[hi].end
            if shot is not None:
                start, end = max(start, shot[0]), min(end, shot[1])
            return (_filled_shot(start, end, shot)
                    or Range(*_at_least(start, end, shot), "visual", " ".join(colours)))
    best = max(inside, key=lambda i: cos[i])
    floor = float(np.median(cos))
    shot = _shot_at(units[best].start, shots)
    if float(cos[best]) - floor >= DISTINCT:
        level = floor + VISUAL_LEVEL * (float(cos[best]) - floor)
        lo, hi = _run(cos, best, units, level)
        start, end = units[lo].start, units[hi].end
        filled = _filled_shot(start, end, shot)
        if filled is not None:
            return filled
        return Range(*_at_least(start, end, shot), "visual")
    spanned = [(a, b) for a, b in shots if a < around[1] - 1e-6 and b > around[0] + 1e-6]
    if shot is not None and len(spanned) > 1:
        a, b = max(shot[0], around[0]), min(shot[1], around[1])
        if b - a >= MIN_LEN:
            return Range(a, b, "shot")
    return None


# "... while she explains it locks in her foundation": what follows a verb of saying is
# what was said. Such a query's moment is when it was said (what is seen holds then too).
_SAYING = re.compile(r"\b(?:says|said|saying|explains|explaining|tells|telling|mentions|mentioning|announces|"
                     r"announcing|asks|asking|talks about|talking about|speaks about|speaking about)\b\s+"
                     r"(?:that\s+|about\s+)?(.+)$", re.IGNORECASE)


def spoken_clause(text: str) -> str | None:
    """The part of a query that says what was said (the words after "says", "explains",
    "talks about", ...), when it holds at least two words; else None."""
    m = _SAYING.search(text)
    if m is None:
        return None
    clause = m.group(1).strip(" .,!?\"'")
    return clause if len(tokenize(clause)) >= 2 else None


def lead_modalities(label: str, phrase_in: Mapping[str, bool], word_share: Mapping[str, float]) -> list[str]:
    """The modalities to cut the moment by, in order: where a quoted phrase of the query
    occurs, then where most of its words occur (WORD_SHARE of them in the segment's
    speech or on-screen text: the evidence says where the match is, whatever the
    intent guessed), then by the query's intent: speech, on-screen text, a named entity
    (said or shown, else seen), else visual."""
    order = {"speech": ["speech", "ocr"], "ocr": ["ocr", "speech"],
             "entity": ["speech", "ocr", "visual"]}.get(label, ["visual"])
    first = [m for m in ("speech", "ocr") if phrase_in.get(m)]
    first += sorted((m for m in ("speech", "ocr") if m not in first and word_share.get(m, 0.0) >= WORD_SHARE),
                    key=lambda m: -word_share[m])
    return first + [m for m in order if m not in first]
