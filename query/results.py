"""What a search returns: timestamped moments (``Hit``) in a ``SearchResponse``."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Hit", "SearchResponse"]


@dataclass
class Hit:
    video_id: str
    source: str
    start: float
    end: float
    score: float
    # what contributed, each on one 0..1 scale: a modality's cosine similarity (only
    # modalities the query weighs whose similarity is above query.moments.MIN_MATCH),
    # "keywords" (the share of the query's words found in this moment's text, when the
    # keyword index found it) and "phrase" (1.0: every quoted phrase occurs in it)
    matched: dict[str, float]
    snippet: str
    title: str | None = None
    segment_ids: list[int] = field(default_factory=list)
    # what set start/end: words (spoken phrases), text (on-screen text span), visual (a
    # run of frames), shot (a run snapped to shot boundaries) or segments (the matched
    # segments' range, which segments_range always holds)
    range_from: str = "segments"
    segments_range: tuple[float, float] | None = None
    seen: str = ""  # what the frame labellers saw in the moment ("1 person, woman, happy, red")
    top_segment: int | None = None  # the best-scoring segment of the moment
    thumbnail_segment: int | None = None  # the segment whose frame shows the moment (holds its middle)
    # [start, end) character offsets of the query's words in ``snippet`` (to highlight)
    highlights: list[tuple[int, int]] = field(default_factory=list)
    confidence: str | None = None  # high / medium / low (query.confidence); None: not assessed
    confidence_score: float | None = None  # the calibrated probability that this moment answers the query
    features: dict[str, float] = field(default_factory=dict, repr=False)  # the confidence model's inputs
    live: bool = False  # the video is still being indexed from a live stream (indexer.live)
    # who is on screen in the moment: [{identity, name (None: unnamed), start, end}] (query.people)
    on_screen: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        seg = self.segments_range or (self.start, self.end)
        return {
            "video_id": self.video_id, "source": self.source, "start": round(self.start, 3),
            "end": round(self.end, 3), "score": round(float(self.score), 6),
            "matched": {k: round(float(v), 4) for k, v in self.matched.items()}, "snippet": self.snippet,
            "highlights": [list(h) for h in self.highlights],
            "title": self.title, "segment_ids": self.segment_ids, "range_from": self.range_from,
            "segments_start": round(seg[0], 3), "segments_end": round(seg[1], 3), "seen": self.seen,
            "live": self.live, "on_screen": self.on_screen,
            "thumbnail_segment": self.thumbnail_segment, "confidence": self.confidence,
            "confidence_score": None if self.confidence_score is None else round(self.confidence_score, 4),
        }


@dataclass
class SearchResponse:
    query: str
    intent: dict
    took_ms: float
    hits: list[Hit]
    parsed: dict = field(default_factory=dict)
    search_id: str = ""  # feedback events (query.learn.store) name the search by it
    ranker: dict = field(default_factory=lambda: {"version": "default"})  # the ranking model that ordered the hits
    min_confidence: str = "low"  # the lowest confidence level shown
    hidden: int = 0  # moments found but below min_confidence

    @property
    def no_good_match(self) -> bool:
        """Nothing at or above ``min_confidence``: say so rather than show weak hits."""
        return not self.hits

    def to_dict(self) -> dict:
        return {"query": self.query, "intent": self.intent, "took_ms": round(self.took_ms, 2),
                "hits": [h.to_dict() for h in self.hits], "parsed": self.parsed, "search_id": self.search_id,
                "ranker": self.ranker, "min_confidence": self.min_confidence, "hidden": self.hidden,
                "no_good_match": self.no_good_match}
