"""Read and write the knowledge graph through the catalog's SQLite tables.

Writes are per video: :meth:`GraphStore.write_video` replaces everything one video's
analysis contributed (entities are upserted, its old edges dropped, the new ones
inserted) in one transaction, so a reader sees the old or the new graph of that
video, never half. Entities are resolved by type and any normalised alias, which is
how "成龙" in one sidecar and "Jackie Chan" in another become one node once a
sidecar names both forms.

Deleting a video needs nothing here: the catalog's foreign keys cascade its edges,
fingerprints and graph state, and its delete path drops entities left without edges
(``engine.catalog.schema_graph.GC_ORPHAN_ENTITIES``).
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from engine.catalog import Catalog
from engine.catalog.identities import FACE_EXTRACTOR
from engine.catalog.schema_graph import ENTITY_TYPES, GC_ORPHAN_ENTITIES, RELATIONS
from engine.names import normalise_alias, script_of
from engine.errors import InputError, NotFoundError, UnknownNameError

__all__ = [
    "ENTITY_TYPES",
    "RELATIONS",
    "NAMED_TYPES",
    "Alias",
    "NewEntity",
    "EntityRef",
    "VideoRef",
    "NewEdge",
    "VideoGraph",
    "AliasRecord",
    "Entity",
    "EdgeRecord",
    "EntityVideo",
    "Neighbour",
    "RelatedVideo",
    "Fingerprint",
    "GraphStore",
    "normalise_alias",
    "script_of",
]

# Types that name something (a query naming one is an "entity" query); topics and
# visual concepts are common words ("cooking", "bicycle") that must not hijack intent.
NAMED_TYPES: tuple[str, ...] = ("person", "title", "organisation", "place")

# -- what extractors hand in ---------------------------------------------------------------
@dataclass(frozen=True)
class Alias:
    """One written form of an entity's name; ``lang`` when the source says (zh, en)."""

    surface: str
    lang: str | None = None


@dataclass(frozen=True)
class NewEntity:
    """An entity as an extractor found it: type, display name, other written forms."""

    type: str
    name: str
    aliases: tuple[Alias, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in ENTITY_TYPES:
            raise UnknownNameError("entity type", self.type, ENTITY_TYPES)
        if not normalise_alias(self.name):
            raise InputError(f"entity name {self.name!r} is empty once normalised", hint="give a name with letters")

    @property
    def key(self) -> str:
        return normalise_alias(self.name)

    def all_forms(self) -> list[Alias]:
        forms = [Alias(self.name), *self.aliases]
        seen: set[str] = set()
        out = []
        for a in forms:
            k = normalise_alias(a.surface)
            if k and k not in seen:
                seen.add(k)
                out.append(a)
        return out


@dataclass(frozen=True)
class EntityRef:
    """An edge end that is an entity of this extraction, named by type and any form."""

    type: str
    name: str


@dataclass(frozen=True)
class VideoRef:
    """An edge end that is a catalog video (its integer key)."""

    key: int


@dataclass(frozen=True)
class NewEdge:
    """An edge with its provenance. ``src_range``/``dst_range``: (start, end) seconds
    in the src/dst video, for reuses_footage."""

    relation: str
    src: EntityRef | VideoRef
    dst: EntityRef | VideoRef
    weight: float = 1.0
    segment: int | None = None
    modality: str = "metadata"
    extractor: str = "metadata"
    confidence: float = 1.0
    src_range: tuple[float, float] | None = None
    dst_range: tuple[float, float] | None = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise UnknownNameError("relation", self.relation, RELATIONS)
        if not 0.0 <= self.confidence <= 1.0:
            raise InputError(f"edge confidence {self.confidence} must be in [0, 1]")


@dataclass
class VideoGraph:
    """Everything one video's analysis contributes to the graph."""

    entities: list[NewEntity] = field(default_factory=list)
    edges: list[NewEdge] = field(default_factory=list)


# -- what readers get --------------------------------------------------------------------------
@dataclass(frozen=True)
class AliasRecord:
    """A stored alias: normalised form, as written, language and script."""

    alias: str
    surface: str
    lang: str | None
    script: str


@dataclass(frozen=True)
class Entity:
    """A stored entity. ``num_videos``: videos linked to it (filled by the readers that count)."""

    id: int
    tenant: str
    type: str
    name: str
    key: str
    aliases: tuple[AliasRecord, ...] = ()
    num_videos: int = 0

    def as_dict(self) -> dict:
        return {
            "entity_id": self.id, "type": self.type, "name": self.name, "key": self.key,
            "aliases": [a.surface for a in self.aliases], "num_videos": self.num_videos,
            "alias_details": [a.__dict__ for a in self.aliases],
        }

    def label(self) -> str:
        """A name to draw: the first Latin form when there is one (the PNG fonts lack CJK)."""
        for a in self.aliases:
            if a.script == "latin":
                return a.surface
        return self.name


@dataclass(frozen=True)
class EdgeRecord:
    """A stored edge. ``src``/``dst`` are ("entity", id) or ("video", key)."""

    id: int
    tenant: str
    relation: str
    src: tuple[str, int]
    dst: tuple[str, int]
    weight: float
    video: int
    segment: int | None
    modality: str
    extractor: str
    confidence: float
    src_range: tuple[float, float] | None
    dst_range: tuple[float, float] | None
    attrs: dict


@dataclass(frozen=True)
class EntityVideo:
    """A video linked to an entity: the strongest link and the segments with evidence."""

    video_key: int
    relations: tuple[str, ...]
    confidence: float
    weight: float
    segments: tuple[int, ...]
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class Neighbour:
    """An entity near another: ``weight`` sums shared videos and direct edges."""

    entity: Entity
    weight: float
    shared_videos: int
    relations: tuple[str, ...]


@dataclass(frozen=True)
class RelatedVideo:
    """A video related to another through shared entities and/or reused footage."""

    video_key: int
    score: float
    shared: tuple[tuple[int, str, str], ...]  # (entity id, type, name)
    reuse: tuple[dict, ...]  # {"this": [s, e], "other": [s, e], "confidence": c}


@dataclass(frozen=True)
class Fingerprint:
    """A video's perceptual hashes: ``times`` (n,) seconds, ``hashes`` (n, variants) uint64."""

    video_key: int
    algo: str
    times: np.ndarray
    hashes: np.ndarray


def _ref(entity: int | None, video: int | None) -> tuple[str, int]:
    return ("entity", int(entity)) if entity is not None else ("video", int(video))  # type: ignore[arg-type]


def _range(a, b) -> tuple[float, float] | None:
    return None if a is None or b is None else (float(a), float(b))


class GraphStore:
    """The knowledge graph of one index, stored in its catalog. Cheap to construct."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _c(self) -> sqlite3.Connection:
        return self.catalog._conn()

    # -- writes ------------------------------------------------------------------------------
    def write_video(self, video_key: int, graph: VideoGraph, *, extractor: str, stats: dict | None = None) -> dict:
        """Replace one video's contributions with ``graph`` (one transaction). Returns
        counts {entities, edges}. Raises NotFoundError if the video is gone."""
        now = time.time()
        with self.catalog.transaction() as c:
            row = c.execute("SELECT tenant FROM videos WHERE id = ?", (video_key,)).fetchone()
            if row is None:
                raise NotFoundError(f"no video with key {video_key} in the catalog", hint="it was deleted meanwhile")
            tenant = row[0]
            # face-identity edges are the identities' own (engine.catalog.identities), not this extraction's
            c.execute("DELETE FROM edges WHERE video = ? AND extractor != ?", (video_key, FACE_EXTRACTOR))
            ids: dict[tuple[str, str], int] = {}
            for ent in graph.entities:
                eid = self._upsert_entity(c, tenant, ent, now)
                for form in ent.all_forms():
                    ids[(ent.type, normalise_alias(form.surface))] = eid
            n_edges = 0
            for e in graph.edges:
                src = self._end(c, tenant, e.src, ids, now)
                dst = self._end(c, tenant, e.dst, ids, now)
                if e.relation == "reuses_footage":
                    # One reuse edge per pair, whichever video's indexing found it last.
                    c.execute(
                        "DELETE FROM edges WHERE relation = 'reuses_footage' AND ((src_video = ? AND dst_video = ?)"
                        " OR (src_video = ? AND dst_video = ?))", (src[1], dst[1], dst[1], src[1]),
                    )
                c.execute(
                    "INSERT INTO edges (tenant, relation, src_entity, src_video, dst_entity, dst_video, weight, video,"
                    " segment, modality, extractor, confidence, src_start, src_end, dst_start, dst_end, attrs,"
                    " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        tenant, e.relation,
                        src[1] if src[0] == "entity" else None, src[1] if src[0] == "video" else None,
                        dst[1] if dst[0] == "entity" else None, dst[1] if dst[0] == "video" else None,
                        float(e.weight), video_key, e.segment, e.modality, e.extractor, float(e.confidence),
                        *(e.src_range or (None, None)), *(e.dst_range or (None, None)),
                        json.dumps(e.attrs, ensure_ascii=False, default=str), now,
                    ),
                )
                n_edges += 1
            c.execute(
                "INSERT OR REPLACE INTO graph_videos (video, status, reason, extractor, stats, updated_at)"
                " VALUES (?, 'done', NULL, ?, ?, ?)",
                (video_key, extractor, json.dumps(stats or {}, default=str), now),
            )
            c.execute(GC_ORPHAN_ENTITIES)
            c.execute("UPDATE graph_meta SET v = v + 1 WHERE k = 'version'")
        return {"entities": len(set(ids.values())), "edges": n_edges}

    def mark_failed(self, video_key: int, *, extractor: str, reason: str) -> None:
        """Record that the graph extraction of a video failed (``graph build`` retries it)."""
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO graph_videos (video, status, reason, extractor, stats, updated_at)"
                " SELECT ?, 'failed', ?, ?, '{}', ? WHERE EXISTS (SELECT 1 FROM videos WHERE id = ?)",
                (video_key, reason, extractor, time.time(), video_key),
            )

    def put_fingerprint(self, video_key: int, algo: str, times: np.ndarray, hashes: np.ndarray) -> None:
        """Store a video's perceptual hashes (replacing older ones)."""
        times = np.ascontiguousarray(times, dtype=np.float32)
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        if hashes.ndim != 2 or len(hashes) != len(times):
            raise InputError(f"fingerprint hashes {hashes.shape} do not match {len(times)} frame times")
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO fingerprints (video, algo, times, hashes, created_at) VALUES (?,?,?,?,?)",
                (video_key, f"{algo}|{hashes.shape[1]}", times.tobytes(), hashes.tobytes(), time.time()),
            )

    def gc(self) -> int:
        """Drop entities without edges; returns how many (normally 0: deletes already do it)."""
        with self.catalog.transaction() as c:
            n = c.execute(GC_ORPHAN_ENTITIES).rowcount
            if n:
                c.execute("UPDATE graph_meta SET v = v + 1 WHERE k = 'version'")
        return int(n)

    def _upsert_entity(self, c: sqlite3.Connection, tenant: str, ent: NewEntity, now: float) -> int:
        forms = ent.all_forms()
        keys = [normalise_alias(a.surface) for a in forms]
        marks = ",".join("?" * len(keys))
        row = c.execute(
            f"SELECT e.id FROM entities e WHERE e.tenant = ? AND e.type = ? AND (e.key IN ({marks}) OR e.id IN"
            f" (SELECT entity FROM entity_aliases WHERE alias IN ({marks}))) ORDER BY e.id LIMIT 1",
            (tenant, ent.type, *keys, *keys),
        ).fetchone()
        if row is not None:
            eid = int(row[0])
        else:
            eid = int(c.execute(
                "INSERT INTO entities (tenant, type, name, key, created_at) VALUES (?,?,?,?,?)",
                (tenant, ent.type, ent.name.strip(), ent.key, now),
            ).lastrowid)
        for a, k in zip(forms, keys):
            c.execute(
                "INSERT OR IGNORE INTO entity_aliases (entity, alias, surface, lang, script) VALUES (?,?,?,?,?)",
                (eid, k, a.surface.strip(), a.lang, script_of(a.surface)),
            )
        return eid

    def _end(self, c, tenant: str, ref: EntityRef | VideoRef, ids: dict, now: float) -> tuple[str, int]:
        if isinstance(ref, VideoRef):
            return ("video", int(ref.key))
        eid = ids.get((ref.type, normalise_alias(ref.name)))
        if eid is None:  # an edge may name an entity the extraction did not list: add it
            eid = self._upsert_entity(c, tenant, NewEntity(ref.type, ref.name), now)
            ids[(ref.type, normalise_alias(ref.name))] = eid
        return ("entity", eid)

    # -- reads: state --------------------------------------------------------------------------
    def version(self) -> int:
        """Bumped by every graph write; readers key caches on (version, catalog seq)."""
        row = self._c().execute("SELECT v FROM graph_meta WHERE k = 'version'").fetchone()
        return int(row[0]) if row else 0

    def is_empty(self, tenant: str | None = None) -> bool:
        sql, args = "SELECT 1 FROM entities", []
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", [tenant]
        return self._c().execute(sql + " LIMIT 1", args).fetchone() is None

    def pending_videos(self, *, tenant: str | None = None, extractor: str | None = None) -> list[int]:
        """Video keys whose graph is missing, failed, or from another extractor version."""
        sql = ("SELECT v.id FROM videos v LEFT JOIN graph_videos g ON g.video = v.id WHERE (g.video IS NULL OR"
               " g.status != 'done'" + (" OR g.extractor != ?" if extractor else "") + ")")
        args: list = [extractor] if extractor else []
        if tenant is not None:
            sql += " AND v.tenant = ?"
            args.append(tenant)
        return [int(r[0]) for r in self._c().execute(sql + " ORDER BY v.id", args)]

    def video_status(self, video_key: int) -> dict | None:
        row = self._c().execute(
            "SELECT status, reason, extractor, stats, updated_at FROM graph_videos WHERE video = ?", (video_key,)
        ).fetchone()
        if row is None:
            return None
        return {"status": row[0], "reason": row[1], "extractor": row[2], "stats": json.loads(row[3]),
                "updated_at": row[4]}

    def counts(self, tenant: str | None = None) -> dict[str, int]:
        c = self._c()
        w, a = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        out = {"entities": c.execute(f"SELECT COUNT(*) FROM entities {w}", a).fetchone()[0],
               "edges": c.execute(f"SELECT COUNT(*) FROM edges {w}", a).fetchone()[0]}
        for rel, n in c.execute(f"SELECT relation, COUNT(*) FROM edges {w} GROUP BY relation", a):
            out[f"edges.{rel}"] = n
        for typ, n in c.execute(f"SELECT type, COUNT(*) FROM entities {w} GROUP BY type", a):
            out[f"entities.{typ}"] = n
        out["aliases"] = c.execute(
            "SELECT COUNT(*) FROM entity_aliases" + (" WHERE entity IN (SELECT id FROM entities WHERE tenant = ?)"
                                                      if tenant is not None else ""), a).fetchone()[0]
        out["fingerprints"] = c.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0]
        return out

    def orphans(self) -> dict[str, int]:
        """Integrity counts that must be zero: entities without edges, edges whose video
        or entity is gone (the foreign keys make the latter impossible; this proves it)."""
        c = self._c()
        return {
            "entities_without_edges": c.execute(
                "SELECT COUNT(*) FROM entities WHERE NOT EXISTS (SELECT 1 FROM edges WHERE src_entity = entities.id"
                " OR dst_entity = entities.id)").fetchone()[0],
            "edges_without_video": c.execute(
                "SELECT COUNT(*) FROM edges WHERE video NOT IN (SELECT id FROM videos) OR (src_video IS NOT NULL AND"
                " src_video NOT IN (SELECT id FROM videos)) OR (dst_video IS NOT NULL AND dst_video NOT IN"
                " (SELECT id FROM videos))").fetchone()[0],
            "edges_without_entity": c.execute(
                "SELECT COUNT(*) FROM edges WHERE (src_entity IS NOT NULL AND src_entity NOT IN (SELECT id FROM"
                " entities)) OR (dst_entity IS NOT NULL AND dst_entity NOT IN (SELECT id FROM entities))"
            ).fetchone()[0],
            "aliases_without_entity": c.execute(
                "SELECT COUNT(*) FROM entity_aliases WHERE entity NOT IN (SELECT id FROM entities)").fetchone()[0],
        }

    # -- reads: entities ---------------------------------------------------------------------------
    def _aliases_of(self, ids: Sequence[int]) -> dict[int, list[AliasRecord]]:
        out: dict[int, list[AliasRecord]] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self._c().execute(
                f"SELECT entity, alias, surface, lang, script FROM entity_aliases WHERE entity IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY rowid", chunk,
            ):
                out.setdefault(r[0], []).append(AliasRecord(r[1], r[2], r[3], r[4]))
        return out

    def _entities(self, rows: list[sqlite3.Row], counts: bool = True) -> list[Entity]:
        ids = [int(r["id"]) for r in rows]
        al = self._aliases_of(ids)
        nv: dict[int, int] = {}
        if counts and ids:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for e, n in self._c().execute(
                    f"SELECT entity, COUNT(DISTINCT video_key) FROM entity_video WHERE entity IN"
                    f" ({','.join('?' * len(chunk))}) GROUP BY entity", chunk,
                ):
                    nv[int(e)] = int(n)
        return [Entity(int(r["id"]), r["tenant"], r["type"], r["name"], r["key"], tuple(al.get(int(r["id"]), ())),
                       nv.get(int(r["id"]), 0)) for r in rows]

    def get_entity(self, entity_id: int, *, tenant: str | None = None) -> Entity:
        """One entity with its aliases; NotFoundError for a missing id or another tenant's."""
        row = self._c().execute("SELECT * FROM entities WHERE id = ?", (int(entity_id),)).fetchone()
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise NotFoundError(f"no entity with id {entity_id} in this index",
                                hint="find ids with `vidseek graph entity NAME` or GET /v1/entities?q=")
        return self._entities([row])[0]

    def entities(self, *, tenant: str | None = None, types: Sequence[str] | None = None,
                 counts: bool = True) -> list[Entity]:
        """All entities (of a tenant, of some types); ``counts=False`` skips counting their videos."""
        sql, args = "SELECT * FROM entities WHERE 1=1", []
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += list(types)
        return self._entities(self._c().execute(sql + " ORDER BY id", args).fetchall(), counts=counts)

    def search_entities(self, q: str, *, tenant: str | None = None, limit: int = 20,
                        types: Sequence[str] | None = None, offset: int = 0) -> list[Entity]:
        """Entities with an alias equal to, starting with, or containing ``q``
        (normalised), best first: exact, then prefix, then substring; more videos first;
        ``offset`` skips that many of this order (a stable order, so pages never overlap)."""
        return self.search_entities_page(q, tenant=tenant, limit=limit, types=types, offset=offset)[0]

    def search_entities_page(self, q: str, *, tenant: str | None = None, limit: int = 20,
                             types: Sequence[str] | None = None, offset: int = 0) -> tuple[list[Entity], int]:
        """(one page of ``search_entities``' order, the number of entities that match)."""
        key = normalise_alias(q)
        if not key:
            raise InputError(f"entity query {q!r} has no letters", hint="give part of a name")
        like = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = " WHERE a.alias LIKE ? ESCAPE '\\'"
        args: list = [like]
        if tenant is not None:
            where += " AND e.tenant = ?"
            args.append(tenant)
        if types:
            where += f" AND e.type IN ({','.join('?' * len(types))})"
            args += list(types)
        total = int(self._c().execute(
            "SELECT COUNT(DISTINCT e.id) FROM entities e JOIN entity_aliases a ON a.entity = e.id" + where, args
        ).fetchone()[0])
        sql = ("SELECT e.*, MIN(CASE WHEN a.alias = ? THEN 0 WHEN a.alias LIKE ? ESCAPE '\\' THEN 1 ELSE 2 END)"
               " AS rank, (SELECT COUNT(DISTINCT ev.video_key) FROM entity_video ev WHERE ev.entity = e.id) AS nv"
               " FROM entities e JOIN entity_aliases a ON a.entity = e.id" + where +
               " GROUP BY e.id ORDER BY rank, nv DESC, e.id LIMIT ? OFFSET ?")
        rows = self._c().execute(sql, [key, like[1:], *args, int(limit), int(offset)]).fetchall()
        return self._entities(rows), total

    def alias_table(self, *, tenant: str | None = None, types: Sequence[str] = NAMED_TYPES
                    ) -> list[tuple[str, int, str]]:
        """(normalised alias, entity id, entity type) for query-time recognition."""
        sql = ("SELECT a.alias, e.id, e.type FROM entity_aliases a JOIN entities e ON e.id = a.entity"
               f" WHERE e.type IN ({','.join('?' * len(types))})")
        args: list = list(types)
        if tenant is not None:
            sql += " AND e.tenant = ?"
            args.append(tenant)
        return [(r[0], int(r[1]), r[2]) for r in self._c().execute(sql, args)]

    def entity_videos(self, entity_id: int, *, limit: int = 1000) -> list[EntityVideo]:
        """Videos linked to an entity, strongest first, with the segments that carry evidence."""
        by: dict[int, dict] = {}
        for r in self._c().execute(
            "SELECT video_key, relation, confidence, weight, segment, modality FROM entity_video WHERE entity = ?",
            (int(entity_id),),
        ):
            d = by.setdefault(int(r[0]), {"rel": set(), "conf": 0.0, "w": 0.0, "seg": set(), "mod": set()})
            d["rel"].add(r[1])
            d["conf"] = max(d["conf"], float(r[2]))
            d["w"] += float(r[3])
            if r[4] is not None:
                d["seg"].add(int(r[4]))
            d["mod"].add(r[5])
        out = [EntityVideo(k, tuple(sorted(d["rel"])), d["conf"], d["w"], tuple(sorted(d["seg"])),
                           tuple(sorted(d["mod"]))) for k, d in by.items()]
        out.sort(key=lambda v: (-v.confidence, -v.weight, v.video_key))
        return out[:limit]

    def video_entities(self, video_key: int) -> list[tuple[Entity, tuple[str, ...], float]]:
        """Entities linked to a video: (entity, relations, best confidence), most confident first."""
        by: dict[int, tuple[set, float]] = {}
        for e, rel, conf in self._c().execute(
            "SELECT entity, relation, confidence FROM entity_video WHERE video_key = ?", (int(video_key),)
        ):
            rels, best = by.get(int(e), (set(), 0.0))
            rels.add(rel)
            by[int(e)] = (rels, max(best, float(conf)))
        if not by:
            return []
        rows = self._c().execute(
            f"SELECT * FROM entities WHERE id IN ({','.join('?' * len(by))})", list(by)
        ).fetchall()
        ents = {e.id: e for e in self._entities(rows)}
        out = [(ents[i], tuple(sorted(r)), c) for i, (r, c) in by.items() if i in ents]
        out.sort(key=lambda x: (-x[2], x[0].type, x[0].id))
        return out

    def neighbours(self, entity_id: int, *, limit: int = 25) -> list[Neighbour]:
        """Entities that share videos with this one, or are joined to it directly
        (co_occurs, related); weight = shared videos + direct edge weights."""
        c = self._c()
        shared: dict[int, set[int]] = {}
        rels: dict[int, set[str]] = {}
        for other, vk, rel in c.execute(
            "SELECT b.entity, b.video_key, b.relation FROM entity_video a JOIN entity_video b"
            " ON a.video_key = b.video_key AND b.entity != a.entity WHERE a.entity = ?", (int(entity_id),),
        ):
            shared.setdefault(int(other), set()).add(int(vk))
            rels.setdefault(int(other), set()).add(rel)
        direct: dict[int, float] = {}
        for other, rel, w in c.execute(
            "SELECT dst_entity, relation, weight FROM edges WHERE src_entity = ? AND dst_entity IS NOT NULL"
            " UNION ALL SELECT src_entity, relation, weight FROM edges WHERE dst_entity = ? AND src_entity IS NOT NULL",
            (int(entity_id), int(entity_id)),
        ):
            direct[int(other)] = direct.get(int(other), 0.0) + float(w)
            rels.setdefault(int(other), set()).add(rel)
        ids = set(shared) | set(direct)
        if not ids:
            return []
        rows = c.execute(f"SELECT * FROM entities WHERE id IN ({','.join('?' * len(ids))})", list(ids)).fetchall()
        ents = {e.id: e for e in self._entities(rows)}
        out = [Neighbour(ents[i], len(shared.get(i, ())) + direct.get(i, 0.0), len(shared.get(i, ())),
                         tuple(sorted(rels.get(i, ())))) for i in ids if i in ents]
        out.sort(key=lambda n: (-n.weight, n.entity.id))
        return out[:limit]

    def related_videos(self, video_key: int, *, limit: int = 20) -> list[RelatedVideo]:
        """Videos related to one: shared entities, each weighted by its rarity
        (log(1 + N/df), so a tag on every video counts little) times the weaker link's
        confidence, plus 2 x the best reused-footage confidence."""
        c = self._c()
        row = c.execute("SELECT tenant FROM videos WHERE id = ?", (int(video_key),)).fetchone()
        if row is None:
            raise NotFoundError(f"no video with key {video_key}")
        n_videos = c.execute("SELECT COUNT(*) FROM videos WHERE tenant = ?", (row[0],)).fetchone()[0]
        mine: dict[int, float] = {}
        for e, conf in c.execute("SELECT entity, MAX(confidence) FROM entity_video WHERE video_key = ? GROUP BY entity",
                                 (int(video_key),)):
            mine[int(e)] = float(conf)
        scores: dict[int, float] = {}
        shared: dict[int, list[int]] = {}
        if mine:
            marks = ",".join("?" * len(mine))
            df = {int(e): int(n) for e, n in c.execute(
                f"SELECT entity, COUNT(DISTINCT video_key) FROM entity_video WHERE entity IN ({marks}) GROUP BY entity",
                list(mine))}
            for e, vk, conf in c.execute(
                f"SELECT entity, video_key, MAX(confidence) FROM entity_video WHERE entity IN ({marks})"
                " AND video_key != ? GROUP BY entity, video_key", [*mine, int(video_key)],
            ):
                idf = math.log(1.0 + n_videos / max(1, df.get(int(e), 1)))
                scores[int(vk)] = scores.get(int(vk), 0.0) + idf * min(mine[int(e)], float(conf))
                shared.setdefault(int(vk), []).append(int(e))
        reuse: dict[int, list[dict]] = {}
        for r in c.execute(
            "SELECT src_video, dst_video, src_start, src_end, dst_start, dst_end, confidence FROM edges"
            " WHERE relation = 'reuses_footage' AND (src_video = ? OR dst_video = ?)", (int(video_key), int(video_key)),
        ):
            mine_first = int(r[0]) == int(video_key)
            other = int(r[1]) if mine_first else int(r[0])
            this_r = [r[2], r[3]] if mine_first else [r[4], r[5]]
            other_r = [r[4], r[5]] if mine_first else [r[2], r[3]]
            reuse.setdefault(other, []).append({"this": this_r, "other": other_r, "confidence": float(r[6])})
        for other, items in reuse.items():
            scores[other] = scores.get(other, 0.0) + 2.0 * max(i["confidence"] for i in items)
        ent_ids = sorted({e for v in shared.values() for e in v})
        ents: dict[int, tuple[str, str]] = {}
        for i in range(0, len(ent_ids), 500):
            chunk = ent_ids[i : i + 500]
            for r in c.execute(f"SELECT id, type, name FROM entities WHERE id IN ({','.join('?' * len(chunk))})",
                               chunk):
                ents[int(r[0])] = (r[1], r[2])
        out = [RelatedVideo(vk, round(s, 6), tuple((e, *ents[e]) for e in sorted(shared.get(vk, [])) if e in ents),
                            tuple(reuse.get(vk, ()))) for vk, s in scores.items()]
        out.sort(key=lambda r: (-r.score, r.video_key))
        return out[:limit]

    # -- reads: edges and fingerprints ----------------------------------------------------------------
    def edges(self, *, tenant: str | None = None, video_key: int | None = None,
              entity_ids: Sequence[int] | None = None) -> Iterator[EdgeRecord]:
        """Stored edges, optionally of one tenant, one video (as provenance or an end),
        or touching some entities."""
        sql, args = "SELECT * FROM edges WHERE 1=1", []
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        if video_key is not None:
            sql += " AND (video = ? OR src_video = ? OR dst_video = ?)"
            args += [video_key] * 3
        if entity_ids is not None:
            ids = [int(i) for i in entity_ids]
            if not ids:
                return
            marks = ",".join("?" * len(ids))
            sql += f" AND (src_entity IN ({marks}) OR dst_entity IN ({marks}))"
            args += ids + ids
        for r in self._c().execute(sql + " ORDER BY id", args):
            yield EdgeRecord(
                id=int(r["id"]), tenant=r["tenant"], relation=r["relation"], src=_ref(r["src_entity"], r["src_video"]),
                dst=_ref(r["dst_entity"], r["dst_video"]), weight=float(r["weight"]), video=int(r["video"]),
                segment=r["segment"], modality=r["modality"], extractor=r["extractor"],
                confidence=float(r["confidence"]), src_range=_range(r["src_start"], r["src_end"]),
                dst_range=_range(r["dst_start"], r["dst_end"]), attrs=json.loads(r["attrs"]),
            )

    def fingerprints(self, *, tenant: str | None = None, exclude: int | None = None) -> list[Fingerprint]:
        sql = "SELECT f.video, f.algo, f.times, f.hashes FROM fingerprints f JOIN videos v ON v.id = f.video"
        args: list = []
        conds = []
        if tenant is not None:
            conds.append("v.tenant = ?")
            args.append(tenant)
        if exclude is not None:
            conds.append("f.video != ?")
            args.append(exclude)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        out = []
        for vk, algo, t, h in self._c().execute(sql + " ORDER BY f.video", args):
            name, _, variants = algo.rpartition("|")
            times = np.frombuffer(t, dtype=np.float32).copy()
            hashes = np.frombuffer(h, dtype=np.uint64).reshape(len(times), int(variants)).copy()
            out.append(Fingerprint(int(vk), name, times, hashes))
        return out
