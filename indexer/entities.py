"""Entity extraction for the knowledge graph, and the per-video graph update.

Sources, each edge carrying its provenance (video, segment, modality, extractor,
confidence):

- **metadata** (``extractor="metadata"``, confidence 1.0): the sidecar's ``people``
  and ``tags`` columns and these free-form fields (kept in ``extra``): cast/actors/
  starring/director/host/guests/presenter/narrator/speakers (people), series/show/
  franchise/ip/collection (titles), studio/channel/brand/organisation/publisher/
  network (organisations), place/location/country/city (places), topics/keywords/
  genre/category (topics), and their Chinese names (演员, 主演, 导演, 嘉宾, 主持人, 系列,
  节目, 频道, 品牌, 地点, 标签, 类型). A name may carry its other written forms:
  ``"成龙 (Jackie Chan)"``, ``"Jackie Chan / 成龙"``, ``{"name": ..., "aliases": [...]}``,
  a list of forms, a parallel field (``cast_zh`` beside ``cast``), or the
  ``aliases`` map ``{"Jackie Chan": ["成龙", "Chan Kong-sang"]}``.
- **speech and on-screen text** (per segment): the gazetteer (``extractor="gazetteer"``:
  every named entity the library already knows plus this video's metadata names,
  longest match, CJK-aware), capitalised spans for unknown English names
  (``"capitalised"``), jieba's part-of-speech tags for unknown Chinese names
  (``"jieba-pos"``: nr person, ns place, nt organisation), and RAKE-style key phrases
  as topics (``"rake"``). Measured on a labelled sample: benchmarks/bench_entities.py.
- **visual labels** (``"imagenet-labels"``): the per-segment ImageNet labels that the
  visual encoder stored, as visual concepts, when their probability is high enough.

Relations: appears_in (person -> video, with the segment when from text), part_of
(video -> title), about (video -> topic, organisation, place, visual concept),
co_occurs (person <-> person on one video), related (topic <-> topic tagged on one
video), reuses_footage (video -> video, ``indexer.reuse``).
"""
from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from engine.catalog import Catalog, SegmentRecord, VideoRecord
from engine.errors import VidseekError
from engine.graph.matcher import AliasMatcher
from engine.graph.store import (
    NAMED_TYPES,
    Alias,
    EntityRef,
    GraphStore,
    NewEdge,
    NewEntity,
    VideoGraph,
    VideoRef,
    normalise_alias,
    script_of,
)

__all__ = [
    "EXTRACTOR_VERSION",
    "GraphOptions",
    "Mention",
    "GraphUpdate",
    "name_forms",
    "metadata_entities",
    "capitalised_spans",
    "chinese_names",
    "key_phrases",
    "TextExtractor",
    "extract_video_graph",
    "update_video_graph",
    "build_graph",
]

log = logging.getLogger("vidseek.graph")

EXTRACTOR_VERSION = "vidseek-graph/1"


@dataclass(frozen=True)
class GraphOptions:
    """What the per-video graph update does. ``keyphrases``: topics per video from
    speech/on-screen text (0: none). ``visual_min_prob``: an ImageNet label becomes a
    visual concept from this probability on. ``reuse``: fingerprint the video and
    match it against the library's (decodes the file again at 2 fps)."""

    text: bool = True
    capitalised: bool = True
    chinese_pos: bool = True
    keyphrases: int = 3
    visual: bool = True
    visual_min_prob: float = 0.3
    reuse: bool = True
    max_pairs_entities: int = 20  # co_occurs/related: cap the quadratic pairs per video


@dataclass(frozen=True)
class Mention:
    """An entity found in a text: type, name as written, extractor, confidence."""

    type: str
    name: str
    extractor: str
    confidence: float


@dataclass
class GraphUpdate:
    """The outcome of one video's graph update."""

    video_key: int
    status: str  # done | failed
    entities: int = 0
    edges: int = 0
    reuse_matches: int = 0
    seconds: float = 0.0
    reason: str | None = None
    stages: dict[str, float] = field(default_factory=dict)


# -- metadata ---------------------------------------------------------------------------------
_FIELDS: dict[str, tuple[str, str]] = {}  # sidecar field -> (entity type, role)
for _names, _type in (
    (("people", "cast", "actors", "starring", "director", "directors", "host", "hosts", "presenter", "presenters",
      "guest", "guests", "narrator", "creator", "creators", "speaker", "speakers", "演员", "主演", "导演", "嘉宾",
      "主持人"), "person"),
    (("series", "show", "franchise", "ip", "collection", "系列", "节目", "剧集"), "title"),
    (("organisation", "organization", "organisations", "organizations", "studio", "studios", "channel", "brand",
      "brands", "publisher", "network", "company", "出品", "频道", "品牌"), "organisation"),
    (("place", "places", "location", "locations", "country", "city", "地点"), "place"),
    (("tags", "topics", "topic", "keywords", "genre", "genres", "category", "categories", "标签", "类型"), "topic"),
):
    for _n in _names:
        _FIELDS[_n] = (_type, _n)
_FORM_SUFFIXES = ("_zh", "_cn", "_en", "_latin", "_pinyin", "_original")
_LIST_SPLIT = re.compile(r"\s*[,，、;；]\s*")
_PAREN = re.compile(r"^(.+?)\s*[(（]\s*(.+?)\s*[)）]\s*$")
_SLASH = re.compile(r"\s*[/|｜／]\s*")


def _lang(surface: str) -> str | None:
    return "zh" if script_of(surface) == "han" else None


def name_forms(text: str) -> list[Alias]:
    """The written forms in one name string: ``"成龙 (Jackie Chan)"`` -> both;
    ``"Jackie Chan / 成龙 / Chan Kong-sang"`` -> all three; ``"Jackie Chan (actor)"``
    -> just the name (a same-script parenthesis is a qualifier, not a form)."""
    text = " ".join(str(text).split())
    if not text:
        return []
    out: list[Alias] = []
    for part in _SLASH.split(text):
        m = _PAREN.match(part)
        if m:
            a, b = m.group(1).strip(), m.group(2).strip()
            forms = [a, b] if script_of(a) != script_of(b) else [a]
        else:
            forms = [part.strip()]
        out += [Alias(f, _lang(f)) for f in forms if normalise_alias(f)]
    return out


def _items(value: Any, *, split: bool) -> list[list[Alias]]:
    """A field's value -> one list of forms per named thing."""
    if value is None:
        return []
    if isinstance(value, dict):
        name = value.get("name") or value.get("title")
        if not isinstance(name, str):
            return []
        forms = name_forms(name)
        extra = value.get("aliases") or value.get("alias") or []
        for a in [extra] if isinstance(extra, str) else extra:
            if isinstance(a, str):
                forms += name_forms(a)
        return [forms] if forms else []
    if isinstance(value, (list, tuple)):
        out: list[list[Alias]] = []
        for v in value:
            if isinstance(v, (list, tuple)):  # a list of forms of one name
                forms = [a for x in v if isinstance(x, str) for a in name_forms(x)]
                if forms:
                    out.append(forms)
            else:
                out += _items(v, split=False)
        return out
    if isinstance(value, (str, int, float)):
        parts = _LIST_SPLIT.split(str(value)) if split else [str(value)]
        return [f for f in (name_forms(p) for p in parts) if f]
    return []


def metadata_entities(video: VideoRecord) -> list[tuple[NewEntity, str]]:
    """(entity, role) for every name in a video's catalogue metadata, forms merged
    (parallel ``*_zh`` fields, the ``aliases`` map), duplicates folded."""
    fields: dict[str, Any] = {k: v for k, v in video.extra.items() if isinstance(k, str)}
    fields["people"] = list(video.people) + _as_list(fields.get("people"))
    fields["tags"] = list(video.tags) + _as_list(fields.get("tags"))
    alias_map: dict[str, list[Alias]] = {}
    amap = fields.get("aliases")
    if isinstance(amap, dict):
        for k, v in amap.items():
            forms = [a for x in ([v] if isinstance(v, str) else v or []) if isinstance(x, str) for a in name_forms(x)]
            alias_map[normalise_alias(str(k))] = forms
    found: list[tuple[str, list[Alias], str]] = []
    for key, value in fields.items():
        base = key
        for suf in _FORM_SUFFIXES:
            if key.endswith(suf) and key[: -len(suf)] in _FIELDS:
                base = None  # handled with its main field below
                break
        if base is None or base not in _FIELDS:
            continue
        typ, role = _FIELDS[base]
        split = typ in ("person", "topic", "place")
        groups = _items(value, split=split)
        for suf in _FORM_SUFFIXES:  # parallel forms: cast_zh[i] is another form of cast[i]
            par = _items(fields.get(base + suf), split=split)
            if par and len(par) == len(groups):
                groups = [g + p for g, p in zip(groups, par)]
            elif par and not groups:
                groups = par
        for g in groups:
            found.append((typ, g, role))
    merged: dict[tuple[str, str], tuple[list[Alias], str]] = {}
    order: list[tuple[str, str]] = []
    for typ, forms, role in found:
        forms = forms + [a for f in forms for a in alias_map.get(normalise_alias(f.surface), [])]
        keys = {normalise_alias(f.surface) for f in forms}
        hit = next((k for k in order if k[0] == typ and (k[1] in keys or keys & {normalise_alias(a.surface)
                                                                                  for a in merged[k][0]})), None)
        if hit is None:
            hit = (typ, normalise_alias(forms[0].surface))
            merged[hit] = ([], role)
            order.append(hit)
        have = {normalise_alias(a.surface) for a in merged[hit][0]}
        merged[hit][0].extend(f for f in forms if normalise_alias(f.surface) not in have)
    out = []
    for k in order:
        forms, role = merged[k]
        uniq: list[Alias] = []
        for f in forms:
            if normalise_alias(f.surface) not in {normalise_alias(u.surface) for u in uniq}:
                uniq.append(f)
        out.append((NewEntity(k[0], uniq[0].surface, tuple(uniq[1:])), role))
    return out


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


# -- free text ---------------------------------------------------------------------------------
# Capitalised words that start or fill sentences without naming anyone.
_CAP_STOP = set("""
i i'm i've i'll i'd a an the this that these those there here it its it's he she we they you your my our their his
her him them me us and but or so if then when where what who why how yes no not oh okay ok well hey hi hello
thanks thank please sorry welcome good great nice now today tonight tomorrow yesterday let let's do does did
is are was were be been have has had will would can could should may might must just also very really
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december mr mrs ms dr sir madam god chapter part episode
professor prof president prime minister senator governor mayor king queen prince princess captain general
coach director chairman ceo
""".split())
# "and" is left out: "Barack Obama and Michelle Obama" is two names, not one.
_CONNECTORS = {"of", "the", "de", "da", "di", "van", "von", "der", "den", "la", "le", "du", "bin", "al"}
_PARTICLES = {"de", "da", "di", "van", "von", "der", "den", "la", "le", "du", "bin", "al"}
_ORG_CUES = set("""inc inc. corp corporation company co ltd llc group university college school institute bank
studios studio records news times post journal association society foundation club fc united airlines motors
agency council committee ministry department museum network channel television tv radio press labs systems
technologies church hospital party federation league""".split())
_PLACE_CUES = set("""city town village river lake mountain mountains mount island islands bay beach park street
avenue road square bridge valley county province state kingdom republic desert forest harbour harbor port
station airport house palace hall tower centre center stadium temple castle""".split())
_PLACES = set("""china beijing shanghai hong kong taiwan japan tokyo korea seoul india paris london berlin rome
madrid moscow new york los angeles san francisco chicago boston washington texas california canada toronto
australia sydney melbourne brazil mexico egypt africa europe asia america france germany italy spain russia
england scotland ireland wales britain sweden norway netherlands amsterdam dubai singapore bangkok vietnam
thailand indonesia""".split())
_TOKEN = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'\-\.]*|[^\sA-Za-z\u00c0-\u024f]+")
_SENT_END = re.compile(r"[.!?。！？]$")


def _is_cap(tok: str) -> bool:
    # ALL-CAPS words (on-screen titles, acronyms) are not name evidence.
    return tok[:1].isupper() and not tok.isupper()


def capitalised_spans(text: str) -> list[Mention]:
    """Unknown names in English text: runs of capitalised words (connectors such as
    "of", "van" inside), not counting a capitalised sentence opener that is a common
    word; typed by cue words (org/place suffixes, a list of well-known places),
    else a person when two or three words. ALL-CAPS text (typical on screen) gives
    nothing: capitals carry no signal there."""
    toks = _TOKEN.findall(text)
    out: list[Mention] = []
    i = 0
    sent_start = True
    while i < len(toks):
        t = toks[i]
        if not t[:1].isalpha():
            sent_start = bool(_SENT_END.search(t)) or sent_start
            i += 1
            continue
        if not _is_cap(t):
            sent_start = False
            i += 1
            continue
        j = i
        span: list[str] = []
        while j < len(toks):
            w = toks[j].rstrip(".,;:!?")
            if _is_cap(toks[j]) and w:
                span.append(w)
            elif toks[j].lower() in _CONNECTORS and span and _cap_after_connectors(toks, j):
                span.append(toks[j].lower())
            else:
                break
            ends = toks[j] != w
            j += 1
            if ends:
                break
        # Drop common capitalised words from the front (sentence openers, pronouns).
        while span and span[0].lower() in _CAP_STOP:
            span.pop(0)
        while span and (span[-1].lower() in _CONNECTORS or span[-1].lower() in _CAP_STOP):
            span.pop()
        words = [w for w in span if w.lower() not in _CONNECTORS]
        if words and not (len(words) == 1 and sent_start):
            m = _type_span(span)
            if m is not None:
                out.append(m)
        sent_start = toks[j - 1][-1:] in ".!?" if j > i else False
        i = max(j, i + 1)
    return out


def _cap_after_connectors(toks: list[str], j: int) -> bool:
    """A connector joins a name only when a capitalised word follows ("Lord of the Rings")."""
    while j < len(toks) and toks[j].lower() in _CONNECTORS:
        j += 1
    return j < len(toks) and _is_cap(toks[j])


def _type_span(span: list[str]) -> Mention | None:
    low = [w.lower() for w in span]
    name = " ".join(span)
    if any(w in _ORG_CUES for w in low):
        return Mention("organisation", name, "capitalised", 0.5)
    if any(w in _PLACE_CUES for w in low) or " ".join(low) in _PLACES or all(w in _PLACES for w in low):
        return Mention("place", name, "capitalised", 0.5)
    inner = [w for w in low if w in _CONNECTORS and w not in _PARTICLES]
    words = [w for w in low if w not in _CONNECTORS]
    if inner or len(words) > 3:
        return Mention("title", name, "capitalised", 0.4)
    if 2 <= len(words) <= 3:
        return Mention("person", name, "capitalised", 0.5)
    return None  # a single capitalised word mid-sentence: too often a common noun


def chinese_names(text: str) -> list[Mention]:
    """Unknown names in Chinese text by jieba's part-of-speech tags: nr (person),
    ns (place), nt (organisation), two characters or more."""
    if not re.search(r"[\u4e00-\u9fff]", text):
        return []
    kinds = {"nr": "person", "nrfg": "person", "nrt": "person", "ns": "place", "nt": "organisation"}
    out = []
    for w in _pos_tokenizer().cut(text):
        typ = kinds.get(w.flag)
        if typ and len(w.word) >= 2 and re.fullmatch(r"[\u4e00-\u9fff·]+", w.word):
            out.append(Mention(typ, w.word, "jieba-pos", 0.5))
    return out


_pos_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _pos_tokenizer():
    """jieba's part-of-speech tagger on a private dictionary, loaded once and quietly
    (jieba logs its dictionary load to stderr at DEBUG)."""
    with _pos_lock:
        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        return jieba.posseg.POSTokenizer(jieba.Tokenizer())


_STOP = set("""a about above after again against all am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few
for from further get got had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just know let's like me more
most mustn't my myself no nor not now of off on once only or other ought our ours ourselves out over own really
right same say said she she'd she'll she's should shouldn't so some such than that that's the their theirs them
themselves then there there's these they they'd they'll they're they've thing things this those through to too
under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which
while who who's whom why why's will with won't would wouldn't yeah yes you you'd you'll you're you've your yours
yourself yourselves going gonna want one two three also well okay oh go come see look make made way today""".split())


def key_phrases(text: str, top: int = 3) -> list[tuple[str, float]]:
    """RAKE (Rose et al. 2010): split at stop words and punctuation; a word scores
    degree/frequency, a phrase the sum of its words. Phrases of 1-3 words, letters
    only; a single word must occur twice (once is too weak for a topic)."""
    words = re.findall(r"[A-Za-z][A-Za-z'\-]*|[^\sA-Za-z]", text.lower())
    phrases: list[tuple[str, ...]] = []
    cur: list[str] = []
    for w in words:
        if w in _STOP or not w[0].isalpha() or len(w) < 3:
            if cur:
                phrases.append(tuple(cur))
            cur = []
        else:
            cur.append(w)
    if cur:
        phrases.append(tuple(cur))
    phrases = [p for p in phrases if 1 <= len(p) <= 3]
    if not phrases:
        return []
    freq: Counter = Counter()
    deg: Counter = Counter()
    for p in phrases:
        for w in p:
            freq[w] += 1
            deg[w] += len(p)
    pcount = Counter(phrases)
    scored = {}
    for p, n in pcount.items():
        if len(p) == 1 and n < 2:
            continue
        scored[" ".join(p)] = sum(deg[w] / freq[w] for w in p) * (1.0 + 0.5 * (n - 1))
    return sorted(scored.items(), key=lambda x: (-x[1], x[0]))[:top]


class TextExtractor:
    """Mentions in a text: gazetteer first (known names, confident), then the
    capitalised-span and Chinese part-of-speech guesses for what it did not cover."""

    def __init__(self, gazetteer: Iterable[tuple[str, tuple[str, str]]] = (), *, capitalised: bool = True,
                 chinese_pos: bool = True) -> None:
        self.matcher: AliasMatcher[tuple[str, str]] = AliasMatcher(gazetteer, stopwords=_CAP_STOP)
        self.capitalised = capitalised
        self.chinese_pos = chinese_pos

    def extract(self, text: str, *, confidence: float = 0.9) -> list[Mention]:
        if not text.strip():
            return []
        out: list[Mention] = []
        covered: set[str] = set()
        for m in self.matcher.find(text):
            for typ, name in m.payloads:
                out.append(Mention(typ, name, "gazetteer", confidence))
            covered.add(m.alias)
        guesses: list[Mention] = []
        if self.capitalised:
            guesses += capitalised_spans(text)
        if self.chinese_pos:
            guesses += chinese_names(text)
        for g in guesses:
            k = normalise_alias(g.name)
            if k in covered or any(k in c or c in k for c in covered):
                continue
            covered.add(k)
            out.append(g)
        return out


# -- one video ---------------------------------------------------------------------------------
_VIDEO_RELATION = {"person": "appears_in", "title": "part_of"}  # everything else: about


def _video_edge(typ: str, name: str, video_key: int, **kw) -> NewEdge:
    rel = _VIDEO_RELATION.get(typ, "about")
    ent = EntityRef(typ, name)
    if rel == "appears_in":
        return NewEdge(rel, ent, VideoRef(video_key), **kw)
    return NewEdge(rel, VideoRef(video_key), ent, **kw)


def extract_video_graph(video: VideoRecord, segments: Sequence[SegmentRecord], *,
                        known: Iterable[tuple[str, tuple[str, str]]] = (),
                        options: GraphOptions | None = None) -> VideoGraph:
    """The graph one video contributes (reused footage aside): pure, no I/O.

    ``known``: (alias, (type, name)) of named entities the library already has, for
    the gazetteer."""
    opts = options or GraphOptions()
    b = _VideoGraphBuilder(video.key)
    gaz = b.add_metadata(video, list(known))
    if opts.text:
        tx = TextExtractor(gaz, capitalised=opts.capitalised, chinese_pos=opts.chinese_pos)
        b.add_catalogue_text(tx, video)
        b.add_segment_text(tx, segments)
        if opts.keyphrases > 0:
            b.add_key_phrases(segments, opts.keyphrases)
    if opts.visual:
        b.add_visual_concepts(segments, opts.visual_min_prob)
    b.add_pairs(opts.max_pairs_entities)
    b.graph.entities = list(b.ents.values())
    return b.graph


class _VideoGraphBuilder:
    """The entities and edges of one video, as :func:`extract_video_graph` collects them."""

    def __init__(self, key: int) -> None:
        self.key = key
        self.graph = VideoGraph()
        self.ents: dict[tuple[str, str], NewEntity] = {}
        self.conf_of: dict[tuple[str, str], float] = {}
        self.persons: list[tuple[str, str]] = []
        self.topics: list[tuple[str, str]] = []

    def add_entity(self, e: NewEntity) -> tuple[str, str]:
        k = (e.type, e.key)
        if k not in self.ents:
            self.ents[k] = e
        return k

    def add_metadata(self, video: VideoRecord, gaz: list[tuple[str, tuple[str, str]]]) -> list:
        """The catalogue's tags and people (confidence 1); returns ``gaz`` plus their forms."""
        for ent, role in metadata_entities(video):
            k = self.add_entity(ent)
            self.conf_of[k] = 1.0
            self.graph.edges.append(_video_edge(ent.type, ent.name, self.key, extractor="metadata",
                                                attrs={"field": role}))
            if ent.type == "person":
                self.persons.append(k)
            elif ent.type == "topic":
                self.topics.append(k)
            if ent.type in NAMED_TYPES:
                gaz += [(f.surface, (ent.type, ent.name)) for f in ent.all_forms()]
        return gaz

    def add_catalogue_text(self, tx: TextExtractor, video: VideoRecord) -> None:
        """Title and description: names the catalogue text mentions without listing them."""
        text = " . ".join(x for x in (video.title or "", video.description or "") if x)
        for m in tx.extract(text, confidence=0.9):
            k = self.add_entity(NewEntity(m.type, m.name))
            if self.conf_of.get(k, 0.0) >= 1.0:
                continue
            self.conf_of[k] = max(self.conf_of.get(k, 0.0), m.confidence)
            self.graph.edges.append(_video_edge(m.type, m.name, self.key, extractor=m.extractor,
                                                confidence=m.confidence, modality="metadata",
                                                attrs={"field": "title/description"}))
            if m.type == "person" and m.confidence >= 0.8:
                self.persons.append(k)

    def add_segment_text(self, tx: TextExtractor, segments: Sequence[SegmentRecord]) -> None:
        """Names in each segment's transcript and on-screen text."""
        seen: set[tuple] = set()  # one edge per entity, segment and modality ("成龙 JACKIE CHAN" is one)
        for s in segments:
            for modality, text, conf in (("speech", s.transcript, 0.9), ("ocr", s.ocr_text, 0.8)):
                for m in tx.extract(text, confidence=conf):
                    c = m.confidence if m.extractor == "gazetteer" else min(m.confidence, conf * 0.6)
                    k = self.add_entity(NewEntity(m.type, m.name))
                    if (k, s.id, modality) in seen:
                        continue
                    seen.add((k, s.id, modality))
                    self.conf_of[k] = max(self.conf_of.get(k, 0.0), c)
                    self.graph.edges.append(_video_edge(m.type, m.name, self.key, segment=s.id, modality=modality,
                                                        extractor=m.extractor, confidence=round(c, 4),
                                                        attrs={"text": m.name}))
                    if m.type == "person" and c >= 0.8:
                        self.persons.append(k)

    def add_key_phrases(self, segments: Sequence[SegmentRecord], n: int) -> None:
        """Up to ``n`` RAKE key phrases of the whole transcript, as topics."""
        full = " \n".join(s.transcript for s in segments if s.transcript)
        for phrase, score in key_phrases(full, n):
            seg = next((s for s in segments if phrase in s.transcript.lower()), None)
            self.add_entity(NewEntity("topic", phrase))
            self.graph.edges.append(_video_edge("topic", phrase, self.key, segment=seg.id if seg else None,
                                                modality="speech", extractor="rake", confidence=0.4,
                                                attrs={"score": round(score, 3)}))

    def add_visual_concepts(self, segments: Sequence[SegmentRecord], min_prob: float) -> None:
        """One visual_concept edge per keyframe label at ``min_prob`` or more."""
        best: dict[str, tuple[float, int, int]] = {}  # label -> (max prob, segment, count)
        for s in segments:
            for lab in s.labels:
                name, p = str(lab[0]), float(lab[1])
                if p < min_prob:
                    continue
                prev = best.get(name)
                best[name] = (max(p, prev[0]) if prev else p, s.id if not prev or p > prev[0] else prev[1],
                              (prev[2] if prev else 0) + 1)
        for name, (p, seg, n) in sorted(best.items()):
            self.add_entity(NewEntity("visual_concept", name))
            self.graph.edges.append(_video_edge("visual_concept", name, self.key, segment=seg, modality="visual",
                                                extractor="imagenet-labels", confidence=round(min(1.0, p), 4),
                                                weight=float(n), attrs={"segments": n}))

    def add_pairs(self, max_entities: int) -> None:
        """co_occurs: people on the same video; related: topics tagged on the same video."""
        for kind, group in (("co_occurs", self.persons), ("related", self.topics)):
            uniq = list(dict.fromkeys(group))[:max_entities]
            for a, b in itertools.combinations(sorted(uniq), 2):
                self.graph.edges.append(NewEdge(
                    kind, EntityRef(*_name_of(self.ents, a)), EntityRef(*_name_of(self.ents, b)),
                    modality="metadata" if kind == "related" else "mixed", extractor=kind,
                    confidence=round(min(self.conf_of.get(a, 1.0), self.conf_of.get(b, 1.0)), 4)))


def _name_of(ents: dict, k: tuple[str, str]) -> tuple[str, str]:
    return (k[0], ents[k].name)


def _known_names(store: GraphStore, tenant: str) -> list[tuple[str, tuple[str, str]]]:
    out = []
    for e in store.entities(tenant=tenant, types=NAMED_TYPES, counts=False):
        for a in e.aliases:
            out.append((a.surface, (e.type, e.name)))
    return out


def update_video_graph(catalog: Catalog, video_key: int, *, options: GraphOptions | None = None,
                       known: list[tuple[str, tuple[str, str]]] | None = None,
                       visual_vectors: bool = True) -> GraphUpdate:
    """Extract one committed video's entities, edges and reused footage, and write
    them (replacing what an earlier run of it wrote).

    A failure (the source file gone, undecodable for fingerprints) is recorded in
    the graph state with its reason (``vidseek graph build`` retries it) and returned
    as ``status="failed"``: the video itself stays indexed."""
    from indexer import reuse

    opts = options or GraphOptions()
    store = GraphStore(catalog)
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    try:
        video = catalog.get_video_by_key(video_key)
        segs = catalog.segments_of(video_key)
        t = time.perf_counter()
        if known is None:
            known = _known_names(store, video.tenant)
        graph = extract_video_graph(video, segs, known=known, options=opts)
        stages["entities"] = time.perf_counter() - t
        n_reuse = 0
        if opts.reuse:
            t = time.perf_counter()
            edges = reuse.update_reuse(catalog, video, use_embeddings=visual_vectors)
            graph.edges += edges
            n_reuse = len(edges)
            stages["reuse"] = time.perf_counter() - t
        counts = store.write_video(video_key, graph, extractor=EXTRACTOR_VERSION,
                                   stats={"stages": {k: round(v, 4) for k, v in stages.items()}})
    except VidseekError as e:
        reason = f"{type(e).__name__}: {e}"
        store.mark_failed(video_key, extractor=EXTRACTOR_VERSION, reason=reason)
        return GraphUpdate(video_key, "failed", reason=reason, seconds=time.perf_counter() - t0, stages=stages)
    return GraphUpdate(video_key, "done", counts["entities"], counts["edges"], n_reuse,
                       time.perf_counter() - t0, stages=stages)


def build_graph(catalog: Catalog, *, tenant: str | None = None, force: bool = False,
                options: GraphOptions | None = None,
                progress: Callable[[int, int, GraphUpdate], None] | None = None) -> list[GraphUpdate]:
    """Backfill: update every video whose graph is missing, failed or from another
    extractor version (``force``: every video). The gazetteer is built first from
    the graph and from every video's metadata names, so an early video's transcript
    finds a name that only a later video's sidecar lists."""
    store = GraphStore(catalog)
    videos = catalog.list_videos(tenant=tenant, limit=10**9)
    todo = [v.key for v in videos] if force else store.pending_videos(tenant=tenant, extractor=EXTRACTOR_VERSION)
    known_by_tenant: dict[str, list[tuple[str, tuple[str, str]]]] = {}
    for v in videos:
        if v.tenant not in known_by_tenant:
            known_by_tenant[v.tenant] = _known_names(store, v.tenant)
        for ent, _ in metadata_entities(v):
            if ent.type in NAMED_TYPES:
                known_by_tenant[v.tenant] += [(f.surface, (ent.type, ent.name)) for f in ent.all_forms()]
    tenant_of = {v.key: v.tenant for v in videos}
    out = []
    for i, key in enumerate(todo):
        res = update_video_graph(catalog, key, options=options, known=known_by_tenant.get(tenant_of.get(key, ""), []))
        out.append(res)
        if progress is not None:
            progress(i + 1, len(todo), res)
    return out
