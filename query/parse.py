"""Query parser: search-box text in, a typed :class:`ParsedQuery` out.

Grammar (whitespace separates terms; field names are case-insensitive)::

    query     := term*
    term      := phrase | negation | field | word
    phrase    := '"' chars '"'  |  '“' chars '”'      must match in speech or on-screen text
    negation  := '-' (word | phrase | setfield)  |  'NOT' (word | phrase | setfield)
    field     := name op value
    op        := ':' | '=' | '>' | '>=' | '<' | '<='   (':' may be followed by a comparison:
                                                        'duration:>=10s' == 'duration>=10s')
    value     := bare-chars | '"' chars '"'

Fields (``name`` and its aliases):

    duration, dur        seconds: 10, 10s, 1.5m, 1m30s, 2min, 1h, 1:30, 0:01:30
                         comparisons, or a range 'dur:10-30s' ('dur:1-2m' = 60-120 s)
    res, resolution      short side of the frame in pixels: 720p, 1080p, 4k, 2160p, 8k,
                         hd, fhd, uhd, 1920x1080 or a bare number; 'res:4k' is the tier
                         band [2160, 4320), comparisons are exact ('res>=1080p')
    fps                  frames a second; comparisons, a range 'fps:24-30' or 'fps:60'
                         (nominal rate: 59.94 counts as 60, 29.97 as 30, 23.976 as 24)
    lang, language       ISO 639-1 code ('zh', 'en'; 'zh-CN' keeps 'zh'); several = any of
    after, before        ISO date YYYY-MM-DD, YYYY-MM or YYYY; both inclusive: 'after:2024'
                         is on or after 2024-01-01, 'before:2024-06' on or before 2024-06-30
    tag                  catalogue tag; several = all of them
    person               a person named in the catalogue; several = all of them
    source, in           folder or URI prefix the video was indexed from; several = any of
    has                  speech (transcript), text (ocr), audio (sound), damage (damaged: part
                         of the picture does not decode), live (still being indexed from a
                         stream); several = all
    people               how many people a frame of the moment shows: 'people>=2',
                         'people:1', 'people:2-4' (frame labels, query.concepts)
    face, emotion,       what the frame labellers saw in the moment: 'face:woman',
    object, style,       'emotion:happy' (or 'face:smiling'), 'object:dog', 'style:cartoon',
    scene, colour/color, 'scene:dark', 'colour:red', 'hair:red'; several = all
    hair                 (query.concepts.VOCABULARY lists the values)

``tag``, ``person``, ``lang``, ``source``/``in``, ``has`` and the label fields may be negated
(``-tag:drone``, ``NOT has:speech``); range fields cannot (flip the comparison instead).

Anything that is not a known field name followed by an operator is plain text, so URLs
(``https://x``), clock times (``10:30``), ratios (``16:9``) and words like ``speed>5``
stay in the text. A known field with a bad value, a bad or misplaced operator, an empty
value, an unclosed quote, an empty phrase, a dangling ``NOT``, contradictory ranges or a
query over :data:`MAX_QUERY_CHARS` raise :class:`engine.errors.QuerySyntaxError` with
the 0-based offset of the offending character; no other exception escapes
:func:`parse`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.errors import QuerySyntaxError

__all__ = [
    "MAX_QUERY_CHARS",
    "ISO_639_1",
    "Range",
    "Filters",
    "ParsedQuery",
    "parse",
]

MAX_QUERY_CHARS = 1000
"""Longer queries are rejected: no search box needs more, and it bounds parse and
embedding cost for an API that takes queries from anyone."""

# ISO 639-1 (all 183 two-letter codes, 2023 list).
ISO_639_1: frozenset[str] = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu
    cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi
    ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks
    ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl
    nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl
    sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu""".split()
)

_QUOTES = {'"': '"', "“": "”"}  # opening -> closing; phones turn "x" into “x”

# Canonical field name for each accepted spelling.
_FIELD_ALIASES = {
    "duration": "duration",
    "dur": "duration",
    "res": "resolution",
    "resolution": "resolution",
    "fps": "fps",
    "lang": "lang",
    "language": "lang",
    "after": "after",
    "before": "before",
    "tag": "tag",
    "person": "person",
    "source": "source",
    "in": "source",
    "has": "has",
    "people": "people",
    "face": "face",
    "emotion": "emotion",
    "action": "action",
    "object": "object",
    "style": "style",
    "scene": "scene",
    "colour": "colour",
    "color": "colour",
    "hair": "hair",
}
_RANGE_FIELDS = frozenset({"duration", "resolution", "fps", "people"})
_LABEL_FIELDS = frozenset({"face", "emotion", "action", "object", "style", "scene", "colour", "hair"})
_NEGATABLE_FIELDS = frozenset({"lang", "tag", "person", "source", "has"}) | _LABEL_FIELDS

# Longest alias first so 'duration' wins over 'dur' and 'resolution' over 'res'.
_FIELD_RE = re.compile(
    r"(?i)(" + "|".join(sorted(map(re.escape, _FIELD_ALIASES), key=len, reverse=True)) + r")"
    r"(>=|<=|:|=|>|<)"
)
_CMP_RE = re.compile(r">=|<=|>|<")

_SET_PAIRS = (
    ("languages", "exclude_languages"),
    ("tags", "exclude_tags"),
    ("people", "exclude_people"),
    ("sources", "exclude_sources"),
    ("has", "has_not"),
    ("labels", "exclude_labels"),
)

_HAS_VALUES = {
    "speech": "speech",
    "transcript": "speech",
    "text": "text",
    "ocr": "text",
    "audio": "audio",
    "sound": "audio",
    "damage": "damage",
    "damaged": "damage",
    "live": "live",  # still being indexed from a live stream (indexer.live)
}

# Standard resolution tiers (short side, pixels); 'res:X' means [X, next tier).
_RES_TIERS = (144, 240, 360, 480, 540, 720, 1080, 1440, 2160, 4320)
_RES_NAMES = {
    "sd": 480,
    "hd": 720,
    "fhd": 1080,
    "fullhd": 1080,
    "qhd": 1440,
    "uhd": 2160,
    "4k": 2160,
    "5k": 2880,
    "6k": 3456,
    "8k": 4320,
}


class _Fail(Exception):
    """Internal: a value failed to parse; ``offset`` is relative to the value start."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Range:
    """A numeric interval; ``None`` bounds are open. Use :meth:`contains` to test."""

    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval."""
        if self.min is not None:
            if value < self.min or (value == self.min and not self.min_inclusive):
                return False
        if self.max is not None:
            if value > self.max or (value == self.max and not self.max_inclusive):
                return False
        return True

    def intersect(self, other: Range) -> Range:
        """The tighter of both bounds on each side."""
        lo, lo_inc = self.min, self.min_inclusive
        if other.min is not None and (
            lo is None or other.min > lo or (other.min == lo and not other.min_inclusive)
        ):
            lo, lo_inc = other.min, other.min_inclusive
        hi, hi_inc = self.max, self.max_inclusive
        if other.max is not None and (
            hi is None or other.max < hi or (other.max == hi and not other.max_inclusive)
        ):
            hi, hi_inc = other.max, other.max_inclusive
        return Range(lo, hi, lo_inc, hi_inc)

    @property
    def is_empty(self) -> bool:
        """True when no value can satisfy both bounds."""
        if self.min is None or self.max is None:
            return False
        if self.min > self.max:
            return True
        return self.min == self.max and not (self.min_inclusive and self.max_inclusive)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "min_inclusive": self.min_inclusive,
            "max_inclusive": self.max_inclusive,
        }


@dataclass(frozen=True)
class Filters:
    """Structured constraints from field terms; empty tuples and ``None`` mean no constraint.

    Semantics the retrieval side applies:
    ``duration`` seconds, ``resolution`` the short side of the frame in pixels (so a
    vertical 1080x1920 video is 1080p), ``fps`` frames a second: each a :class:`Range`.
    ``languages``: the video's language is any of them. ``after``/``before``: inclusive
    dates. ``tags``/``people``: all must be present (compare case-insensitively).
    ``sources``: the source path or URI starts with any of them. ``has``: every listed
    modality (``speech``, ``text``, ``audio``) is present, ``damage``: the video is
    damaged (part of its picture does not decode), ``live``: it is still being indexed
    from a live stream. ``exclude_*``/``has_not``:
    none of them may hold.
    """

    duration: Range | None = None
    resolution: Range | None = None
    fps: Range | None = None
    languages: tuple[str, ...] = ()
    exclude_languages: tuple[str, ...] = ()
    after: date | None = None
    before: date | None = None
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    exclude_people: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    exclude_sources: tuple[str, ...] = ()
    has: tuple[str, ...] = ()
    has_not: tuple[str, ...] = ()
    people_count: Range | None = None  # people in a frame of the moment
    labels: tuple[str, ...] = ()  # "kind:label" frame labels a moment must show
    exclude_labels: tuple[str, ...] = ()

    @property
    def has_labels(self) -> bool:
        """True when a frame-label constraint (people count, face, object...) is set."""
        return bool(self.people_count is not None or self.labels or self.exclude_labels)

    @property
    def is_empty(self) -> bool:
        """True when the query set no filter at all."""
        return self == Filters()

    @property
    def has_technical(self) -> bool:
        """True when a technical constraint (duration, resolution, fps) is set."""
        return any(r is not None for r in (self.duration, self.resolution, self.fps))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ranges as dicts, dates as ISO strings, tuples as lists."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Range):
                value = value.to_dict()
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class ParsedQuery:
    """The parts of one query.

    ``text`` is the free text left after removing fields, phrases and negations;
    ``search_text`` is what to embed: the free text and the phrases (without quotes) in
    their original order. ``phrases`` must match in speech or on-screen text;
    ``negated_terms``/``negated_phrases`` must not.
    """

    raw: str
    text: str
    search_text: str
    phrases: tuple[str, ...] = ()
    negated_terms: tuple[str, ...] = ()
    negated_phrases: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to rank by and nothing to filter on."""
        return (
            not self.search_text
            and not self.negated_terms
            and not self.negated_phrases
            and self.filters.is_empty
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, for ``search --json`` and the HTTP API."""
        return {
            "raw": self.raw,
            "text": self.text,
            "search_text": self.search_text,
            "phrases": list(self.phrases),
            "negated_terms": list(self.negated_terms),
            "negated_phrases": list(self.negated_phrases),
            "filters": self.filters.to_dict(),
        }


# --------------------------------------------------------------------------- values

_NUM = r"\d+(?:\.\d+)?|\.\d+"
# Longest unit spelling first: regex alternation takes the first that matches.
_DUR_PART_RE = re.compile(
    rf"({_NUM})(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)?", re.IGNORECASE
)
_CLOCK_RE = re.compile(r"(\d+):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def _duration_seconds(text: str, default_unit: str | None = None) -> tuple[float, str | None]:
    """Seconds in ``text`` and the last unit letter used (None for a bare number).

    A bare number takes ``default_unit`` (seconds when None), which lets a range like
    '1-2m' read as 1 m to 2 m.
    """
    clock = _CLOCK_RE.match(text)
    if clock:
        a, b, c = clock.groups()
        # float(), not int(): a 400-digit count must become inf, not OverflowError.
        if c is None:  # m:ss
            total = float(a) * 60.0 + float(b)
        else:  # h:mm:ss
            total = float(a) * 3600.0 + float(b) * 60.0 + float(c)
        if not math.isfinite(total):
            raise _Fail("duration is too large", 0)
        return total, "s"
    pos, total, last_unit, units_seen = 0, 0.0, None, []
    while pos < len(text):
        m = _DUR_PART_RE.match(text, pos)
        if not m:
            raise _Fail("expected a duration such as 10s, 1m30s or 1:30", pos)
        number, unit = m.group(1), m.group(2)
        if unit is None:
            if m.end() != len(text):
                raise _Fail("expected a unit (h, m, s)", m.end())
            if units_seen:  # '1m30' means 1 m 30 s
                key = {"h": "m", "m": "s"}.get(units_seen[-1])
                if key is None:
                    raise _Fail("expected nothing after seconds", m.start())
            else:
                key = default_unit or "s"
        else:
            key = unit[0].lower()
            if units_seen and "hms".index(key) <= "hms".index(units_seen[-1]):
                raise _Fail("units must go from hours to seconds", m.start(2))
            units_seen.append(key)
            last_unit = key
        total += float(number) * _UNIT_SECONDS[key]
        pos = m.end()
    if not math.isfinite(total):
        raise _Fail("duration is too large", 0)
    return total, last_unit


def _resolution_px(text: str) -> float:
    low = text.lower()
    if low in _RES_NAMES:
        return float(_RES_NAMES[low])
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", low)
    if m:
        return float(min(int(m.group(1)), int(m.group(2))))
    m = re.fullmatch(r"(\d{1,5})([pi]?)", low)
    if m:
        return float(m.group(1))
    raise _Fail("expected a resolution such as 720p, 1080p, 4k or 1920x1080")


def _fps_value(text: str) -> float:
    if not re.fullmatch(_NUM, text) or not math.isfinite(float(text)):
        raise _Fail("expected frames a second as a number, such as 24, 29.97 or 60")
    return float(text)


def _ntsc_floor(nominal: float) -> float:
    """Lower bound that admits the NTSC rate for ``nominal`` (60 -> 59.94)."""
    return math.floor(nominal * 1000 / 1001 * 1000) / 1000


def _split_range(text: str) -> tuple[str, str, int] | None:
    """'10-30s' -> ('10', '30s', offset of the second part); None if not a range."""
    idx = text.find("-", 1)
    if idx == -1:
        return None
    return text[:idx], text[idx + 1 :], idx + 1


def _range_for(name: str, op: str, value: str) -> Range:
    """Build the Range for a range field (duration, resolution, fps)."""
    if name == "duration":
        if op in (":", "="):
            parts = _split_range(value)
            if parts is None:
                raise _Fail(
                    "a duration needs a range (dur:10-30s) or a comparison (duration>=10s)"
                )
            a, b, off_b = parts
            if not b:
                raise _Fail("missing the upper end of the range", off_b)
            try:
                hi, unit = _duration_seconds(b)
            except _Fail as e:
                raise _Fail(e.message, e.offset + off_b) from None
            lo, _ = _duration_seconds(a, default_unit=unit)
            if lo > hi:
                raise _Fail("the range's lower end is above its upper end")
            return Range(lo, hi)
        seconds, _ = _duration_seconds(value)
        return _compare(op, seconds)
    if name == "people":
        return _people_range(op, value)
    if name == "resolution":
        if op in (":", "="):
            px = _resolution_px(value)
            higher = [t for t in _RES_TIERS if t > px]
            return Range(px, float(higher[0]) if higher else None, True, False)
        return _compare(op, _resolution_px(value))
    # fps
    if op in (":", "="):
        parts = _split_range(value)
        if parts is not None:
            a, b, off_b = parts
            lo = _fps_value(a)
            try:
                hi = _fps_value(b)
            except _Fail as e:
                raise _Fail(e.message, off_b) from None
            if lo > hi:
                raise _Fail("the range's lower end is above its upper end")
            return Range(_ntsc_floor(lo), hi)
        fps = _fps_value(value)
        return Range(_ntsc_floor(fps), fps)
    fps = _fps_value(value)
    if op == ">=":
        return Range(_ntsc_floor(fps), None)
    return _compare(op, fps)


def _people_range(op: str, value: str) -> Range:
    def count(v: str, off: int = 0) -> float:
        if not v.isdigit() or int(v) > 100:
            raise _Fail("expected a number of people such as 2", off)
        return float(v)

    if op in (":", "="):
        parts = _split_range(value)
        if parts is not None:
            a, b, off_b = parts
            lo, hi = count(a), count(b, off_b)
            if lo > hi:
                raise _Fail("the range's lower end is above its upper end")
            return Range(lo, hi)
        n = count(value)
        return Range(n, n)
    return _compare(op, count(value))


def _label_value(name: str, value: str) -> str:
    """``kind:label`` for a label field's value, or _Fail listing what it accepts."""
    from query.concepts import find_concepts, label_filter_values

    v = " ".join(value.lower().replace("_", " ").split())
    kind = name
    if name == "face" and v in label_filter_values("emotion"):
        kind = "emotion"  # 'face:happy' reads as an expression
    allowed = label_filter_values(kind)
    if v in allowed:
        return f"{kind}:{v}"
    if name == "face":
        allowed = label_filter_values("face") + label_filter_values("emotion")
    for c in find_concepts(f"{v} hair" if kind == "hair" else v):  # synonyms: 'object:sofa', 'face:smiling',
        # 'style:animated', 'hair:ginger'
        for k, lab, _ in c.labels:
            if k == kind or (name == "face" and k == "emotion"):
                return f"{k}:{lab}"
    import difflib

    near = difflib.get_close_matches(v, allowed, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise _Fail(f"unknown {name} {value!r}{hint} (one of: {', '.join(allowed)})")


def _compare(op: str, x: float) -> Range:
    return {
        ">": Range(x, None, False, True),
        ">=": Range(x, None, True, True),
        "<": Range(None, x, True, False),
        "<=": Range(None, x, True, True),
    }[op]


_DATE_RE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _parse_date(value: str, end_of_period: bool) -> date:
    m = _DATE_RE.match(value)
    if not m:
        raise _Fail("expected an ISO date: YYYY-MM-DD, YYYY-MM or YYYY")
    y, mo, d = m.groups()
    try:
        if d is not None:
            return date(int(y), int(mo), int(d))
        if mo is not None:
            month = int(mo)
            start = date(int(y), month, 1)
            if not end_of_period:
                return start
            nxt = date(int(y) + month // 12, month % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        year = int(y)
        if year < 1:
            raise ValueError("year 0")
        return date(year, 12, 31) if end_of_period else date(year, 1, 1)
    except (ValueError, OverflowError) as e:
        raise _Fail(f"not a valid date ({e})") from None


def _lang_code(value: str) -> str:
    m = re.fullmatch(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{2,8})*", value)
    if not m or m.group(1).lower() not in ISO_639_1:
        raise _Fail("expected an ISO 639-1 language code such as en, zh, es or ja")
    return m.group(1).lower()


# --------------------------------------------------------------------------- parser


@dataclass
class _Acc:
    """Mutable accumulator the parser fills; frozen into Filters/ParsedQuery at the end."""

    text: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    neg_terms: list[str] = field(default_factory=list)
    neg_phrases: list[str] = field(default_factory=list)
    ranges: dict[str, Range] = field(default_factory=dict)
    after: date | None = None
    before: date | None = None
    sets: dict[str, list[str]] = field(default_factory=dict)

    def add_set(self, key: str, value: str) -> None:
        values = self.sets.setdefault(key, [])
        if value not in values:
            values.append(value)


class _Parser:
    def __init__(self, text: str) -> None:
        self.q = text
        self.n = len(text)
        self.acc = _Acc()

    def error(self, message: str, position: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, query=self.q, position=max(0, min(position, self.n)))

    # -- scanning helpers
    def skip_space(self, i: int) -> int:
        while i < self.n and self.q[i].isspace():
            i += 1
        return i

    def read_bare(self, i: int) -> int:
        """End of a bare run of characters: stops at whitespace or an opening quote."""
        while i < self.n and not self.q[i].isspace() and self.q[i] not in _QUOTES:
            i += 1
        return i

    def read_quoted(self, i: int) -> tuple[str, int]:
        """Text between the quote at ``i`` and its closing quote; the index after it."""
        close = _QUOTES[self.q[i]]
        end = self.q.find(close, i + 1)
        if end == -1:
            raise self.error("unclosed quote", i)
        inner = " ".join(self.q[i + 1 : end].split())
        if not inner:
            raise self.error("empty quoted text", i)
        return inner, end + 1

    # -- main loop
    def run(self) -> ParsedQuery:
        if self.n > MAX_QUERY_CHARS:
            raise self.error(f"query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
        i = self.skip_space(0)
        while i < self.n:
            i = self.term(i)
            i = self.skip_space(i)
        return self.finish()

    def term(self, i: int) -> int:
        c = self.q[i]
        if c in _QUOTES:
            phrase, j = self.read_quoted(i)
            self.acc.phrases.append(phrase)
            self.acc.search.append(phrase)
            return j
        if c == "-" and i + 1 < self.n and not self.q[i + 1].isspace():
            return self.negation(i + 1)
        if self.q.startswith("NOT", i) and (i + 3 == self.n or self.q[i + 3].isspace()):
            j = self.skip_space(i + 3)
            if j >= self.n:
                raise self.error("NOT needs a word, a quoted phrase or a field after it", i)
            return self.negation(j)
        m = _FIELD_RE.match(self.q, i)
        if m:
            return self.field(m, negated=False)
        j = self.read_bare(i)
        word = self.q[i:j]
        self.acc.text.append(word)
        self.acc.search.append(word)
        return j

    def negation(self, i: int) -> int:
        c = self.q[i]
        if c in _QUOTES:
            phrase, j = self.read_quoted(i)
            self.acc.neg_phrases.append(phrase)
            return j
        if c == "-" or self.q.startswith("NOT", i) and (i + 3 == self.n or self.q[i + 3].isspace()):
            raise self.error("double negation", i)
        m = _FIELD_RE.match(self.q, i)
        if m:
            return self.field(m, negated=True)
        j = self.read_bare(i)  # advances: q[i] is neither space nor a quote
        self.acc.neg_terms.append(self.q[i:j])
        return j

    def field(self, m: re.Match[str], negated: bool) -> int:
        name = _FIELD_ALIASES[m.group(1).lower()]
        name_pos, op_pos = m.start(1), m.start(2)
        op = m.group(2)
        i = m.end()
        if op == ":":
            cmp = _CMP_RE.match(self.q, i)
            if cmp:
                op = cmp.group(0)
                op_pos, i = cmp.start(), cmp.end()
        if i < self.n and self.q[i] in "<>=":
            raise self.error(f"invalid comparison for {m.group(1)!r}", i)
        if negated and name not in _NEGATABLE_FIELDS:
            raise self.error(
                f"{m.group(1)!r} cannot be negated; flip the comparison instead", name_pos
            )
        if op in (">", ">=", "<", "<=") and name not in _RANGE_FIELDS:
            raise self.error(f"{m.group(1)!r} takes ':' not {op!r}", op_pos)
        # value
        if i >= self.n or self.q[i].isspace():
            raise self.error(f"empty value for {m.group(1)!r}", i)
        if self.q[i] in _QUOTES:
            value, end = self.read_quoted(i)
            value_pos = i + 1
        else:
            end = self.read_bare(i)
            value, value_pos = self.q[i:end], i
        try:
            self.apply(name, op, value, negated)
        except _Fail as e:
            raise self.error(f"{m.group(1)}: {e.message}", value_pos + e.offset) from None
        except _Conflict as e:
            raise self.error(f"{m.group(1)}: {e}", name_pos) from None
        return end

    def apply(self, name: str, op: str, value: str, negated: bool) -> None:
        acc = self.acc
        if name in _RANGE_FIELDS:
            new = _range_for(name, op, value)
            merged = acc.ranges[name].intersect(new) if name in acc.ranges else new
            if merged.is_empty:
                raise _Conflict("contradicts an earlier constraint on the same field")
            acc.ranges[name] = merged
        elif name in ("after", "before"):
            d = _parse_date(value, end_of_period=(name == "before"))
            if name == "after":
                acc.after = d if acc.after is None else max(acc.after, d)
            else:
                acc.before = d if acc.before is None else min(acc.before, d)
            if acc.after is not None and acc.before is not None and acc.after > acc.before:
                raise _Conflict("'after' is later than 'before'")
        elif name == "lang":
            acc.add_set("exclude_languages" if negated else "languages", _lang_code(value))
        elif name in _LABEL_FIELDS:
            acc.add_set("exclude_labels" if negated else "labels", _label_value(name, value))
        elif name == "has":
            canon = _HAS_VALUES.get(value.lower())
            if canon is None:
                raise _Fail(f"expected one of {sorted(set(_HAS_VALUES))}")
            acc.add_set("has_not" if negated else "has", canon)
        else:
            key = {"tag": "tags", "person": "people", "source": "sources"}[name]
            acc.add_set("exclude_" + key if negated else key, value)
        for keep, drop in _SET_PAIRS:
            both = set(acc.sets.get(keep, ())) & set(acc.sets.get(drop, ()))
            if both:
                raise _Conflict(f"asks both for and against {sorted(both)[0]!r}")

    def finish(self) -> ParsedQuery:
        acc = self.acc
        filters = Filters(
            duration=acc.ranges.get("duration"),
            resolution=acc.ranges.get("resolution"),
            fps=acc.ranges.get("fps"),
            people_count=acc.ranges.get("people"),
            after=acc.after,
            before=acc.before,
            **{k: tuple(v) for k, v in acc.sets.items()},
        )
        return ParsedQuery(
            raw=self.q,
            text=" ".join(acc.text),
            search_text=" ".join(acc.search),
            phrases=tuple(acc.phrases),
            negated_terms=tuple(acc.neg_terms),
            negated_phrases=tuple(acc.neg_phrases),
            filters=filters,
        )


class _Conflict(Exception):
    """Internal: a constraint contradicts an earlier one (reported at the field name)."""


def parse(text: str) -> ParsedQuery:
    """Parse one search query.

    Raises :class:`engine.errors.QuerySyntaxError` (with ``position``) for malformed
    field syntax, unclosed quotes and over-long queries; never any other exception for
    a ``str`` input. A non-``str`` input raises ``QuerySyntaxError`` at position 0.
    """
    if not isinstance(text, str):
        raise QuerySyntaxError(
            f"a query must be a string, got {type(text).__name__}", query=repr(text), position=0
        )
    return _Parser(text).run()

