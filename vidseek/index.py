"""``vidseek.Index``: the library's one entry point (see docs/library.md).

It wraps the engine, indexer and query packages the way the ``vidseek`` command uses
them: an index folder opened once, models loaded on the first search and kept, so a
program pays the 4-10 s of model loading once, not per query.
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Index", "AddReport", "Hit", "SearchResult", "Video", "Metadata"]

# What ``add(metadata=...)`` takes: a JSONL sidecar path, or {source: fields}.
Metadata = str | os.PathLike | Mapping[str, Mapping[str, Any]] | None


@dataclass(frozen=True)
class Hit:
    """One moment: ``source`` as indexed, ``start``/``end`` in seconds, the fused
    ``score``, per-modality ``matched`` scores, a ``snippet`` of the evidence, and
    ``range_from`` (what cut the range: words, text, visual, shot or segments)."""

    video_id: str
    source: str
    start: float
    end: float
    score: float
    matched: dict[str, float]
    snippet: str
    title: str | None = None
    range_from: str = "segments"
    confidence: str | None = None  # high / medium / low (docs/results.md)
    seen: str = ""  # what the frame labellers saw in the moment (docs/labels.md)
    raw: dict = field(default_factory=dict, repr=False)  # every field of the response's hit

    @classmethod
    def from_dict(cls, d: dict) -> "Hit":
        return cls(d["video_id"], d["source"], float(d["start"]), float(d["end"]), float(d["score"]),
                   dict(d.get("matched") or {}), d.get("snippet") or "", d.get("title"),
                   d.get("range_from") or "segments", d.get("confidence"), d.get("seen") or "", d)


@dataclass(frozen=True)
class SearchResult:
    """A search's moments, best first, with the query's intent (label, weights) and time."""

    query: str
    hits: list[Hit]
    intent: dict
    took_ms: float
    hidden: int = 0  # moments found below min_confidence
    min_confidence: str = "low"

    @property
    def no_good_match(self) -> bool:
        """Nothing at or above ``min_confidence`` (docs/results.md)."""
        return not self.hits

    def __iter__(self):
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def to_dict(self) -> dict:
        return {"query": self.query, "intent": self.intent, "took_ms": self.took_ms,
                "hits": [h.raw for h in self.hits], "min_confidence": self.min_confidence, "hidden": self.hidden,
                "no_good_match": self.no_good_match}


@dataclass(frozen=True)
class Video:
    """One indexed video's catalogue record."""

    video_id: str
    source: str
    duration: float | None
    title: str | None
    tags: list[str]
    people: list[str]
    status: str
    record: Any = field(repr=False)  # the engine.catalog.VideoRecord


@dataclass(frozen=True)
class AddReport:
    """What ``Index.add`` did: per-file results (``indexed``, ``replaced``, ``skipped``,
    ``duplicate``, ``failed``), failures with reasons, sidecar lines that matched no file."""

    summary: dict
    results: list = field(repr=False)

    @property
    def failed(self) -> list[dict]:
        return self.summary["failures"]

    @property
    def indexed(self) -> int:
        by = self.summary["by_status"]
        return by.get("indexed", 0) + by.get("replaced", 0)

    @property
    def unmatched_metadata(self) -> list[str]:
        return self.summary.get("unmatched_metadata", [])


class Index:
    """An index folder. ``Index.open(dir)`` opens an existing one; ``Index.create(dir)``
    makes a new one (``config``, ``text_encoder``, ``image_encoder`` fix how it is
    built); ``Index(dir)`` opens or creates on the first ``add``. Use it as a context
    manager, or call ``close()``. One ``Index`` is safe to search from several threads;
    ``add`` and ``delete`` take the index's single writer lock for their duration (an
    ``IndexLockedError`` when ``vidseek serve`` or another writer holds it).
    """

    def __init__(self, path: str | os.PathLike, *, config: Any = None) -> None:
        self.path = Path(path)
        self._config = config  # engine.config.IndexConfig for a new index
        self._reader: Any = None  # engine.index.VideoIndex, read-only, opened on first use
        self._searcher: Any = None
        self._lock = threading.Lock()

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "Index":
        """An existing index (``NotFoundError`` naming the folder when there is none)."""
        from engine.errors import NotFoundError
        from engine.index import VideoIndex

        if VideoIndex.read_config(path) is None:
            raise NotFoundError(f"{path} is not a vidseek index", hint="make one with Index.create(path) or add()")
        return cls(path)

    @classmethod
    def create(cls, path: str | os.PathLike, *, config: Any = None, text_encoder: str | None = None,
               image_encoder: str | None = None, image_options: Mapping[str, Any] | None = None) -> "Index":
        """A new, empty index (``InputError`` if one exists there with other settings)."""
        from engine.config import IndexConfig
        from indexer.ingest import open_writer

        cfg = config or IndexConfig()
        if text_encoder or image_encoder:
            d = cfg.as_dict()
            if text_encoder:
                d["text_encoder"] = text_encoder
            if image_encoder:
                # no options: the encoder's defaults (engine.config.DEFAULT_IMAGE_OPTIONS)
                d.update(image_encoder=image_encoder, image_options=None if image_options is None else dict(image_options))
            cfg = IndexConfig.from_dict(d)
        open_writer(path, cfg).close()
        return cls(path, config=cfg)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._searcher = None

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self):
        from engine.index import VideoIndex

        with self._lock:
            if self._reader is None:
                self._reader = VideoIndex.open(self.path)
        self._reader.sync()  # see what add() or another process committed since
        return self._reader

    # -- writing -----------------------------------------------------------------------
    def add(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *, metadata: Metadata = None,
            workers: int | None = None, tenant: str = "default", speech: bool = True, ocr: bool = True,
            visual: bool = True, language: str | None = None, objects: bool = True, faces: bool = True,
            picture: bool = True, pose: bool = False, ocr_small_text: bool = False, max_bytes: int | None = None,
            progress: Callable | None = None, ray: str | None = None, device: str | None = None) -> AddReport:
        """Index files and folders (folders recursively). ``metadata``: a JSONL sidecar
        path or ``{source: {"title", "description", "tags", "people", ...}}``; a file
        whose metadata changed is re-indexed with it. ``workers``: None picks from the
        machine's cores and memory. ``ocr_small_text``: OCR detects text again at full
        size, for small text (about 2.2x the OCR time). ``ray``: analyse on the Ray cluster at this address
        ("local": start one on this machine; see ``indexer.distributed``). ``device``:
        where the models run, "auto", "cpu" or "cuda" (None: ``$VIDSEEK_DEVICE``, else
        auto; see ``engine.accel``). Never raises for a bad file: see the report."""
        from indexer.metadata import Sidecar
        from indexer.options import IndexOptions, default_workers
        from indexer.pipeline import index_paths

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [os.fspath(p) for p in paths]
        self._refuse_nothing_to_index(paths)
        side: Any = metadata
        if isinstance(metadata, Mapping):
            side = Sidecar.from_mapping(metadata)
        options = IndexOptions(tenant=tenant, workers=workers or default_workers(), speech=speech, ocr=ocr,
                               visual=visual, language=language, objects=objects, faces=faces, picture=picture,
                               pose=pose, ocr_small_text=ocr_small_text, max_bytes=max_bytes, device=device)
        if ray is not None:
            from indexer.distributed import index_paths_ray

            report = index_paths_ray(paths, self.path, address=ray, metadata=side, config=self._config,
                                     options=options, progress=progress)
        else:
            report = index_paths(paths, self.path, metadata=side, config=self._config,
                                 options=options, progress=progress)
        return AddReport(report.summary(), report.results)

    def _refuse_nothing_to_index(self, paths: list[str]) -> None:
        """No new index for paths that are all missing: that call could only leave an
        empty index folder behind (an existing index records them as failures)."""
        from engine.errors import InputError
        from engine.index import VideoIndex

        if VideoIndex.read_config(self.path) is not None:
            return
        if not paths:
            raise InputError("no paths to index", hint="name video files or folders")
        if not any(os.path.lexists(p) for p in paths):
            shown = ", ".join(repr(p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
            raise InputError(f"nothing to index: {shown} {'does' if len(paths) == 1 else 'do'} not exist;"
                             f" {self.path} was not created", hint="check the path(s)")

    def delete(self, video_id: str, *, tenant: str | None = None) -> Video:
        """Remove a video (one transaction); returns what was removed."""
        from engine.index import VideoIndex

        from indexer.thumbs import ThumbStore

        with VideoIndex.open(self.path, writer=True) as w:
            rec = w.delete_video(video_id, tenant=tenant)
        ThumbStore(self.path).remove(rec.video_id)  # its moment thumbnails go with it
        return _video(rec)

    # -- reading -----------------------------------------------------------------------
    def search(self, query: str = "", *, k: int = 10, image: str | os.PathLike | None = None,
               per_video: int = 1, fusion: str = "auto", rerank: bool = False,
               tenant: str | None = None, min_confidence: str = "low") -> SearchResult:
        """Ranked, timestamped moments for a text query (with filters: ``duration>10s``,
        ``tag:drone``, ``"exact phrase"``, ``-word``, ``people>=2``, ``object:dog``;
        README "Query syntax"), an ``image`` (a picture file), or both. Each hit has a
        confidence; ``min_confidence`` ("low": all, "medium", "high") hides the weaker."""
        from query.planner import SearchOptions, Searcher

        index = self._read()
        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(index)
        img = None
        if image is not None:
            from indexer.media import load_image

            img = load_image(os.fspath(image))
        opts = SearchOptions(k=k, fusion=fusion, rerank=rerank, per_video=per_video, tenant=tenant,
                             min_confidence=min_confidence)
        d = self._searcher.search(query, image=img, options=opts).to_dict()
        return SearchResult(d["query"], [Hit.from_dict(h) for h in d["hits"]], d["intent"], float(d["took_ms"]),
                            int(d.get("hidden", 0)), d.get("min_confidence", min_confidence))

    def videos(self, *, tenant: str | None = None, limit: int = 1000, offset: int = 0) -> list[Video]:
        return [_video(r) for r in self._read().catalog.list_videos(tenant=tenant, limit=limit, offset=offset)]

    def video(self, video_id: str, *, tenant: str | None = None) -> Video:
        return _video(self._read().catalog.get_video(video_id, tenant=tenant))

    def info(self) -> dict:
        """Counts, encoders, settings and whether the derived state is saved (``vidseek info --json``)."""
        return self._read().info()

    def __len__(self) -> int:
        return self._read().catalog.count_videos()

    # -- production --------------------------------------------------------------------
    def clip(self, video_id: str, start: float, end: float, out: str | os.PathLike, *,
             copy: str = "auto", tenant: str | None = None):
        """A playable H.264/AAC MP4 of ``[start, end)`` (``indexer.export.ClipResult``)."""
        from indexer.export import export_clip

        rec = self._read().catalog.get_video(video_id, tenant=tenant)
        return export_clip(rec.source, start, end, out, copy=copy)

    def covers(self, video_id: str, out: str | os.PathLike | None = None, *, k: int = 4,
               aspects: Sequence[str] = ("16:9",), tenant: str | None = None) -> list[dict]:
        """The video's best ``k`` covers (time, score, reasons, rejection if any); with
        ``out``, JPEGs of the accepted ones per aspect are written there."""
        from indexer.covers.candidates import CoverOptions, compute_covers, render_variants

        index = self._read()
        rec = index.catalog.get_video(video_id, tenant=tenant)
        cover_set = compute_covers(index.catalog, rec, index.config, options=CoverOptions(k=k))
        covers = cover_set.as_dict()["covers"]
        if out is not None:
            keep = [i for i, c in enumerate(cover_set.picked) if c.assessment.reject is None]
            written = render_variants([cover_set.picked[i] for i in keep], out, aspects=aspects,
                                      names=[f"cover{i}" for i in keep])
            for i, files in zip(keep, written):
                covers[i]["files"] = {a: str(p) for a, p in files.items()}
        return covers

    # -- async -------------------------------------------------------------------------
    # -- people (docs/identities.md) ----------------------------------------------------
    def identities(self, *, tenant: str | None = None, named: bool | None = None, limit: int = 100) -> list[dict]:
        """The people seen in the library, most on screen first."""
        from engine.identities import IdentityStore

        return [i.to_dict() for i in IdentityStore(self._read().catalog).list(tenant=tenant, named=named, limit=limit)]

    def edit_identities(self, action: str, *args, **kw) -> Any:
        """One edit through ``engine.identities.IdentityStore`` in a writer: ``rename``
        (id, name), ``merge`` ([ids]), ``split`` (id, tracks=..., video_ids=...),
        ``delete`` (id) or ``set_enabled`` (bool, the privacy switch)."""
        from engine.errors import InputError
        from engine.identities import IdentityStore
        from engine.index import VideoIndex

        if action not in ("rename", "merge", "split", "delete", "set_enabled"):
            raise InputError(f"unknown identity action {action!r}",
                             hint="use rename, merge, split, delete or set_enabled")
        with VideoIndex.open(self.path, writer=True) as w:
            return getattr(IdentityStore(w.catalog), action)(*args, **kw)

    def find_face(self, image: str | os.PathLike, *, k: int = 10, tenant: str | None = None) -> list[Hit]:
        """A face image as a query: the moments where that person is on screen."""
        from indexer.media import load_image
        from query.people import face_query

        hits, _ = face_query(self._read(), load_image(str(image), max_side=1024), k=k, tenant=tenant)
        return [Hit.from_dict(h.to_dict()) for h in hits]

    async def asearch(self, query: str = "", **kw) -> SearchResult:
        """``search`` on a worker thread, for asyncio programs."""
        return await asyncio.to_thread(self.search, query, **kw)

    async def aadd(self, paths, **kw) -> AddReport:
        """``add`` on a worker thread, for asyncio programs."""
        return await asyncio.to_thread(self.add, paths, **kw)


def _video(r) -> Video:
    return Video(r.video_id, r.source, r.duration, r.title, list(r.tags or []), list(r.people or []), r.status, r)
