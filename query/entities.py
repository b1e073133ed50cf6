"""Entity recognition in queries, alias expansion, and the boost of an entity's moments.

The alias dictionary is the graph's: every alias of every named entity (person,
title, organisation, place) of the tenant, normalised, matched longest-first and
CJK-aware (:class:`engine.graph.matcher.AliasMatcher`), so "成龙 kung fu" and
"jackie chan kung fu" find the same entity. Topics and visual concepts are left
out on purpose: they are common words ("cooking", "bicycle") and would turn
ordinary visual queries into entity queries.

A recognised query:

- gets intent "entity" (:meth:`EntityMatch.apply_intent`: the classifier's scores
  plus ``INTENT_BOOST`` log-odds for entity, the label set to entity, the modality
  weights re-mixed from the boosted scores);
- is expanded with the entity's other aliases for BM25 (:meth:`EntityMatch.expand`);
- adds the entity's segments to the candidates and boosts them
  (:meth:`EntityMatch.boost`): ``BOOST`` x the link's confidence, full for a segment
  with its own evidence (the name is said or shown there), ``VIDEO_SHARE`` of it for
  the other segments of a video linked as a whole (cast in the sidecar).

The dictionary is cached per tenant and rebuilt when the graph's version or the
catalog's op seq moves; an empty graph costs one SQLite read per query.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from engine.catalog import MODALITIES, Catalog
from engine.graph.matcher import AliasMatcher
from engine.graph.store import NAMED_TYPES, GraphStore, normalise_alias

__all__ = ["EntityHit", "EntityMatch", "EntityRecognizer", "BOOST", "VIDEO_SHARE", "INTENT_BOOST"]

# Fused scores are in [0, 1] (convex, min-max) or far below (RRF): a boost of 1.0 puts
# the entity's moments above every other, ordered among themselves by relevance,
# which is what a query naming someone asks for.
BOOST = 1.0
VIDEO_SHARE = 0.75
INTENT_BOOST = 4.0  # log-odds for "entity" when a known name is in the query
MAX_VIDEOS = 50  # candidates injected per query: at most this many videos ...
MAX_SEGMENTS = 400  # ... and this many segments


@dataclass(frozen=True)
class EntityHit:
    """One entity named in the query: the alias that matched and all its forms."""

    entity_id: int
    type: str
    name: str
    matched: str
    aliases: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"entity_id": self.entity_id, "type": self.type, "name": self.name, "matched": self.matched,
                "aliases": list(self.aliases)}


@dataclass
class EntityMatch:
    """The entities a query names, and the evidence to boost."""

    entities: tuple[EntityHit, ...]
    videos: dict[int, float] = field(default_factory=dict)  # video key -> strength
    segments: dict[int, float] = field(default_factory=dict)  # segment id -> strength

    def to_dict(self) -> dict:
        return {"entities": [e.to_dict() for e in self.entities], "videos": len(self.videos),
                "segments_with_evidence": len(self.segments)}

    def expand(self, text: str) -> str:
        """``text`` plus each entity's aliases that it does not already contain (for BM25)."""
        have = normalise_alias(text)
        extra = [a for e in self.entities for a in e.aliases if normalise_alias(a) not in have]
        return " ".join([text, *dict.fromkeys(extra)])

    def apply_intent(self, intent, classifier):
        """The classifier's ``Intent`` with entity boosted and the label set to entity."""
        from query.intent import INTENTS, Intent

        logits = np.log(np.clip(np.array([intent.scores[n] for n in INTENTS], dtype=np.float64), 1e-12, None))
        logits[INTENTS.index("entity")] += INTENT_BOOST
        p = np.exp(logits - logits.max())
        p /= p.sum()
        weights = {m: float(sum(p[i] * classifier.intent_weights[n][m] for i, n in enumerate(INTENTS)))
                   for m in MODALITIES}
        return Intent(label="entity", confidence=float(p[INTENTS.index("entity")]),
                      scores={n: float(p[i]) for i, n in enumerate(INTENTS)}, weights=weights,
                      rules_fired=(*intent.rules_fired, "known_entity"))

    def candidate_segments(self, catalog: Catalog) -> list[int]:
        """Segments to add to the candidates: those with evidence, then the segments of
        videos linked as a whole, strongest videos first, within the caps."""
        out = list(self.segments)[:MAX_SEGMENTS]
        seen = set(out)
        for vk, _ in sorted(self.videos.items(), key=lambda x: -x[1])[:MAX_VIDEOS]:
            if len(out) >= MAX_SEGMENTS:
                break
            for s in catalog.segments_of(vk):
                if s.id not in seen:
                    seen.add(s.id)
                    out.append(s.id)
        return out[:MAX_SEGMENTS]

    def strength(self, segment_id: int, video_key: int) -> float:
        s = self.segments.get(segment_id, 0.0)
        v = self.videos.get(video_key, 0.0) * VIDEO_SHARE
        return max(s, v)

    def boost(self, segment_id: int, video_key: int) -> float:
        """What this entity adds to a segment's fused score: ``BOOST x strength``."""
        return BOOST * self.strength(segment_id, video_key)


class EntityRecognizer:
    """Finds known entities in query text for one open index. Thread-safe."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.store = GraphStore(catalog)
        self._lock = threading.Lock()
        self._cache: dict[str | None, tuple[tuple[int, int], AliasMatcher | None]] = {}

    def _matcher(self, tenant: str | None) -> AliasMatcher | None:
        stamp = (self.store.version(), self.catalog.max_seq())
        with self._lock:
            got = self._cache.get(tenant)
            if got is not None and got[0] == stamp:
                return got[1]
        rows = self.store.alias_table(tenant=tenant, types=NAMED_TYPES)
        m = AliasMatcher(((a, eid) for a, eid, _ in rows)) if rows else None
        with self._lock:
            self._cache[tenant] = (stamp, m if m else None)
        return m if m else None

    def recognise(self, text: str, tenant: str | None = None) -> EntityMatch | None:
        """The entities ``text`` names (None when it names none, or the graph is empty)."""
        if not text or not text.strip():
            return None
        m = self._matcher(tenant)
        if m is None:
            return None
        found = m.find(text)
        if not found:
            return None
        hits: list[EntityHit] = []
        seen: set[int] = set()
        for f in found:
            for eid in f.payloads:
                if eid in seen:
                    continue
                seen.add(eid)
                e = self.store.get_entity(eid)
                hits.append(EntityHit(e.id, e.type, e.name, f.alias, tuple(a.surface for a in e.aliases)))
        match = EntityMatch(tuple(hits))
        for h in hits:
            for v in self.store.entity_videos(h.entity_id):
                match.videos[v.video_key] = match.videos.get(v.video_key, 0.0) + v.confidence
            for seg, conf in self._segment_evidence(h.entity_id):
                match.segments[seg] = match.segments.get(seg, 0.0) + conf
        return match

    def _segment_evidence(self, entity_id: int) -> list[tuple[int, float]]:
        rows = self.store._c().execute(
            "SELECT segment, MAX(confidence) FROM entity_video WHERE entity = ? AND segment IS NOT NULL"
            " GROUP BY segment", (int(entity_id),),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]
