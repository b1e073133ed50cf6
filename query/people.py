"""People in search: ``person:"X"`` by face, a face image as a query, who is on screen.

- ``person:"X"`` holds for a video whose catalogue lists X (as before) or where an
  identity named X is on screen (``with_faces`` adds the names on screen to the video
  records a search filters). A query of filters only (``person_moments``) returns, per
  video, the moment X's face is on screen (the longest, best track), with the track's
  time range; videos that only list X in their metadata follow, whole.
- ``face_query``: the face in an image -> FaceRes descriptor -> the identities whose
  centroid is at least ``engine.catalog.identities.JOIN_SIMILARITY`` alike -> their
  moments, most alike first.
- ``describe_people``: each hit's ``on_screen`` (identities whose tracks overlap its
  range), and the names at the front of its ``seen`` line.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from engine.catalog import VideoRecord
from engine.catalog.identities import JOIN_SIMILARITY, name_key
from engine.errors import InputError, NotFoundError
from engine.identities import Appearance, IdentityStore
from query.filters import video_passes
from query.parse import ParsedQuery
from query.results import Hit

__all__ = ["with_faces", "person_moments", "face_query", "face_descriptor", "describe_people", "MAX_MOMENTS"]

MAX_MOMENTS = 1000


def _store(index) -> IdentityStore:
    return IdentityStore(index.catalog)


def with_faces(index, fetch: Callable[[set[int]], dict[int, VideoRecord]], keys: set[int]) -> dict[int, VideoRecord]:
    """``fetch(keys)`` with the names of the identities on screen added to each video's
    ``people`` (for the person filters). Read fresh on every call, so a rename shows at once."""
    videos = fetch(keys)
    screen = _store(index).on_screen(list(videos))
    out = {}
    for k, v in videos.items():
        names = [n for _, n, _, _ in screen.get(k, []) if n]
        if names:
            have = {name_key(p) for p in v.people}
            v = replace(v, people=list(v.people) + [n for n in dict.fromkeys(names) if name_key(n) not in have])
        out[k] = v
    return out


def _hit(v: VideoRecord, a: Appearance, name: str, score: float, matched: dict) -> Hit:
    return Hit(v.video_id, v.source, a.start, a.end, round(score, 4), matched, f"on screen: {name}", v.title,
               segment_ids=[a.segment] if a.segment is not None else [], range_from="face",
               segments_range=(a.start, a.end), top_segment=a.segment, thumbnail_segment=a.segment,
               confidence="high", confidence_score=1.0, live=v.status == "live", seen=f"{name} on screen")


def person_moments(index, parsed: ParsedQuery, k: int, tenant: str | None,
                   fetch: Callable[[set[int]], dict[int, VideoRecord]]) -> list[Hit]:
    """A filter-only query with ``person:`` terms: per video, the moment where the first
    named person's face is on screen (longest and best track first), then videos that
    list the person only in their metadata (whole video). Every other filter applies."""
    store = _store(index)
    name = parsed.filters.people[0]
    ids = [i.id for i in store.find(name, tenant=tenant)]
    apps = store.appearances(ids)[:MAX_MOMENTS]
    videos = with_faces(index, fetch, {a.video_key for a in apps})
    hits: list[Hit] = []
    seen: set[int] = set()
    total = max((a.end - a.start) for a in apps) if apps else 1.0
    for a in apps:
        v = videos.get(a.video_key)
        if v is None or a.video_key in seen or (tenant is not None and v.tenant != tenant) or not video_passes(v, parsed):
            continue
        seen.add(a.video_key)
        hits.append(_hit(v, a, name, (a.end - a.start) / max(total, 1e-6), {"face": round(a.quality, 4)}))
        if len(hits) >= k:
            return hits
    for v in index.list_videos(tenant=tenant, limit=100_000):
        if v.key in seen or not any(name_key(p) == name_key(name) for p in v.people):
            continue
        if video_passes(with_faces(index, lambda ks: {v.key: v}, {v.key})[v.key], parsed):
            hits.append(Hit(v.video_id, v.source, 0.0, float(v.duration or 0.0), 0.0, {}, v.title or "", v.title,
                            confidence="high", confidence_score=1.0, live=v.status == "live"))
            if len(hits) >= k:
                break
    return hits


def face_descriptor(rgb: np.ndarray) -> np.ndarray:
    """The FaceRes descriptor of the largest face in ``rgb``. Raises InputError when
    the image shows no face (or the face models are not installed)."""
    from indexer import human_models
    from indexer.covers.faces import detect_faces
    from indexer.stages.faces import MIN_FACE_SCORE

    if not human_models.available():
        raise InputError("the face models are not installed", hint="run scripts/setup.sh (docs/human-models.md)")
    img = np.ascontiguousarray(np.asarray(rgb)[..., :3])
    faces = detect_faces(img, min_score=MIN_FACE_SCORE)
    if not faces:
        raise InputError("no face found in the query image", hint="send a photo where one face is clearly visible")
    f = max(faces, key=lambda b: (b.x1 - b.x0) * (b.y1 - b.y0))
    d = human_models.face_attributes(human_models.face_crop(img, (f.x0, f.y0, f.x1, f.y1)))["descriptor"]
    return (d / max(float(np.linalg.norm(d)), 1e-12)).astype(np.float32)


def face_query(index, rgb: np.ndarray, *, k: int = 10, tenant: str | None = None,
               descriptor: np.ndarray | None = None) -> tuple[list[Hit], list[dict]]:
    """A face image as a query: (moments of the matching identities, one a video, most
    alike identity first; the identities considered with their similarity)."""
    store = _store(index)
    d = descriptor if descriptor is not None else face_descriptor(rgb)
    matches = store.match(d, tenant=tenant, limit=5)
    considered = [{**i.to_dict(), "similarity": round(s, 4)} for i, s in matches]
    hits: list[Hit] = []
    seen: set[int] = set()
    for ident, sim in matches:
        if sim < JOIN_SIMILARITY:
            break
        apps = store.appearances([ident.id])
        videos = index.videos_by_keys(list({a.video_key for a in apps}))
        for a in apps:
            v = videos.get(a.video_key)
            if v is None or a.video_key in seen or (tenant is not None and v.tenant != tenant):
                continue
            seen.add(a.video_key)
            hits.append(_hit(v, a, ident.label, sim, {"face": round(sim, 4)}))
            if len(hits) >= k:
                return hits, considered
    return hits, considered


def describe_people(index, hits: list[Hit]) -> None:
    """Each hit's ``on_screen``: the identities whose tracks overlap its range (name or
    "unknown person N"), and the named ones at the front of its ``seen`` line."""
    if not hits:
        return
    recs = index.catalog
    by_id: dict[str, int] = {}
    for h in hits:
        if h.video_id not in by_id:
            try:
                by_id[h.video_id] = recs.get_video(h.video_id).key
            except NotFoundError:  # deleted since the search: nothing to describe
                continue
    screen = _store(index).on_screen(list(by_id.values()))
    for h in hits:
        rows = screen.get(by_id.get(h.video_id, -1), [])
        people: dict[int, dict] = {}
        for iid, name, s, e in rows:
            if s < h.end and h.start < e:
                p = people.setdefault(iid, {"identity": iid, "name": name, "start": s, "end": e})
                p["start"], p["end"] = min(p["start"], s), max(p["end"], e)
        h.on_screen = [{**p, "start": round(p["start"], 3), "end": round(p["end"], 3)} for p in people.values()]
        named = [p["name"] for p in h.on_screen if p["name"]]
        if named and not h.seen.startswith(", ".join(named)):
            who = ", ".join(named) + " on screen"
            h.seen = who if not h.seen else f"{who}; {h.seen}"
