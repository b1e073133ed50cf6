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
    matched: dict[str, float]
    snippet: str
    title: str | None = None
    segment_ids: list[int] = field(default_factory=list)
    # what set start/end: words (spoken phrases), text (on-screen text span), visual (a
    # run of frames), shot (a run snapped to shot boundaries) or segments (the matched
    # segments' range, which segments_range always holds)
    range_from: str = "segments"
    segments_range: tuple[float, float] | None = None
    live: bool = False  # the video is still being indexed from a live stream (indexer.live)

    def to_dict(self) -> dict:
        seg = self.segments_range or (self.start, self.end)
        return {
            "video_id": self.video_id, "source": self.source, "start": round(self.start, 3),
            "end": round(self.end, 3), "score": round(float(self.score), 6),
            "matched": {k: round(float(v), 4) for k, v in self.matched.items()}, "snippet": self.snippet,
            "title": self.title, "segment_ids": self.segment_ids, "range_from": self.range_from,
            "segments_start": round(seg[0], 3), "segments_end": round(seg[1], 3), "live": self.live,
        }


@dataclass
class SearchResponse:
    query: str
    intent: dict
    took_ms: float
    hits: list[Hit]
    parsed: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "intent": self.intent, "took_ms": round(self.took_ms, 2),
                "hits": [h.to_dict() for h in self.hits], "parsed": self.parsed}
