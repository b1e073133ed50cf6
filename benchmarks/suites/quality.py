"""Quality suite: vidseek's retrieval methods and the peers on judged queries.

Inputs are a folder of clips and a judged queries file (``shared/bench``'s format,
read by ``benchmarks.suites.judged.load_queries``). A preset with ``max_clips``
takes a subset: per query kind in turn, the query whose relevant clips are the
cheapest to index (shortest), while the clip and media-second budgets allow; then
every query whose relevant clips all made it in, and every negative query. The
clips are indexed once with the real pipeline into a cache folder keyed by the clip
set and the index settings (``--quality-index DIR`` names an existing index
instead, which must hold every clip).

Every query then runs through the chosen ``judged.METHODS`` (vidseek; the
``default`` method is the product default) and through the peers
(``benchmarks.peers``: rank-bm25 alone and a txtai hybrid index over the same
segment texts, read from the same index). Scoring is ``judged``'s: clip level,
Recall@1/5/10, MRR, nDCG@10, R1@IoU0.5 and R1@IoU0.7, per kind and overall, negatives apart.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.peers import QUALITY_PEERS, QualityPeer, available_quality_peers, make_quality_peer, segment_texts
from benchmarks.presets import QualityConfig
from benchmarks.suites import judged
from benchmarks.suites.common import Metric, Progress, SuiteResult
from benchmarks.suites.judged import Method, Query
from engine.errors import InputError, MissingDependencyError

__all__ = ["QualityInputs", "load_inputs", "select_subset", "cache_index_dir", "run"]


@dataclass(frozen=True)
class QualityInputs:
    """What the quality suite searches: clips (id -> path), judged queries, and
    optionally an existing index that holds every clip."""

    clips: Mapping[str, str]
    queries: tuple[Query, ...]
    index_dir: Path | None = None
    origin: str = ""  # where the clips and queries came from, for the report

    def __post_init__(self) -> None:
        if not self.clips:
            raise InputError("the quality suite got no clips")
        if not self.queries:
            raise InputError("the quality suite got no queries")
        unknown = sorted({r.clip for q in self.queries for r in q.relevant} - set(self.clips))
        if unknown:
            raise InputError(f"queries name clips that are not among the clips given: {unknown}",
                             hint="point --media at the folder the queries were judged on")


def _durations(clips: Mapping[str, str]) -> dict[str, float]:
    from indexer.media import probe

    return {cid: float(probe(path).duration or 0.0) for cid, path in clips.items()}


def select_subset(durations: Mapping[str, float], queries: Sequence[Query], *, max_clips: int,
                  max_media_seconds: float | None) -> tuple[list[str], list[Query]]:
    """Clips and queries of a cheap, kind-balanced subset (see the module docstring).

    Deterministic: ties are broken by query id."""
    if max_clips < 1:
        raise InputError(f"max_clips must be at least 1, got {max_clips}")
    budget = float("inf") if max_media_seconds is None else max_media_seconds
    positives = [q for q in queries if not q.is_negative]
    kinds = judged.ordered_kinds(positives)

    def cost(q: Query) -> float:
        return sum(durations[c] for c in q.relevant_clips)

    queue = {k: sorted((q for q in positives if q.kind == k), key=lambda q: (cost(q), q.qid)) for k in kinds}
    chosen: set[str] = set()
    seconds = 0.0
    progressed = True
    while progressed:
        progressed = False
        for k in kinds:
            while queue[k]:
                q = queue[k].pop(0)
                new = q.relevant_clips - chosen
                add_s = sum(durations[c] for c in new)
                if len(chosen) + len(new) <= max_clips and seconds + add_s <= budget:
                    chosen |= new
                    seconds += add_s
                    progressed = True
                    break  # one query per kind per round keeps the kinds balanced
    picked = [q for q in queries if q.is_negative or (q.relevant_clips and q.relevant_clips <= chosen)]
    if not any(not q.is_negative for q in picked):
        raise InputError(f"no judged query fits in {max_clips} clips / {max_media_seconds} s of media",
                         hint="raise max_clips or max_media_seconds")
    return sorted(chosen), picked


def load_inputs(media: Path, queries_file: Path, cfg: QualityConfig, *, index_dir: Path | None = None) -> QualityInputs:
    """Clips and queries from a media folder and a judged queries file, cut to the
    preset's subset when it sets ``max_clips``."""
    clips = judged.list_clips(media)
    queries = judged.load_queries(queries_file)
    unknown = sorted({r.clip for q in queries for r in q.relevant} - set(clips))
    if unknown:
        raise InputError(f"the queries in {queries_file} name clips that are not in {media}: {unknown}",
                         hint="point --media at the folder the queries were judged on")
    origin = f"{media} + {queries_file}"
    if cfg.max_clips is not None:
        ids, queries = select_subset(_durations(clips), queries, max_clips=cfg.max_clips,
                                     max_media_seconds=cfg.max_media_seconds)
        clips = {c: clips[c] for c in ids}
        origin += f" (subset: {len(ids)} clips, {len(queries)} queries)"
    return QualityInputs(clips, tuple(queries), index_dir, origin)


def _index_settings() -> dict[str, Any]:
    from engine.config import IndexConfig
    from indexer.pipeline import IndexOptions

    from engine.catalog.schema import SCHEMA_VERSION
    from engine.index import FORMAT_VERSION

    opts = asdict(IndexOptions())
    opts.pop("workers", None)  # how many processes ran does not change the index
    # A catalog schema or index format change makes an old cached index unreadable
    # (or in need of a writer's migration): key on them, so a new one gets built.
    return {"options": opts, "config": IndexConfig().as_dict(), "catalog_schema": SCHEMA_VERSION,
            "index_format": FORMAT_VERSION}


def cache_index_dir(clips: Mapping[str, str], cache_dir: Path) -> Path:
    """The cache folder for an index of exactly these clips (ids and sizes) built with
    today's default settings and storage versions; another clip set, setting or
    version gets another folder."""
    files = sorted((cid, Path(p).stat().st_size) for cid, p in clips.items())
    key = hashlib.sha256(json.dumps({"clips": files, **_index_settings()}, sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    return cache_dir / f"quality-{len(clips)}clips-{key}"


def _existing_index(index_dir: Path, clips: Mapping[str, str]) -> dict[str, Any]:
    """The ingest record of an index given with ``--quality-index`` (its sidecar, as
    ``judged.ensure_index`` wrote it); raises if the index lacks any chosen clip."""
    missing = sorted(set(clips) - judged.indexed_clips(index_dir))
    if missing:
        raise InputError(f"--quality-index {index_dir} lacks {len(missing)} of the chosen clips: {missing[:10]}",
                         hint="index them first, or drop --quality-index to build a cached index")
    sidecar = index_dir.with_name(index_dir.name + ".ingest.json")
    built = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else None
    return {"reused": True, "given": True, "built": built}


def _peer_method(name: str) -> Method:
    return Method(name, {"peer": name})


def run(cfg: QualityConfig, inputs: QualityInputs, cache_dir: Path, *, peers: str | Sequence[str] = "auto",
        progress: Progress | None = None) -> SuiteResult:
    """Index (or reuse), search every query through every method and peer, score.

    ``peers``: ``"auto"`` runs the preset's peers whose packages are installed and
    records the others as skipped; a list runs exactly those (a missing package is
    an error); ``()`` runs none."""
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    methods = judged.select_methods(",".join(cfg.methods) if cfg.methods else None)
    skipped: dict[str, str] = {}
    if peers == "auto":
        peer_names, skipped = available_quality_peers(cfg.peers)
    else:
        peer_names = list(peers)
        _ok, absent = available_quality_peers(peer_names)  # unknown names raise here, before any work
        if absent:
            name = next(iter(absent))
            raise MissingDependencyError(QUALITY_PEERS[name].package, f"the {name} benchmark peer",
                                         hint="pip install 'vidseek[bench]', or pass --peers auto")
    if inputs.index_dir is not None:
        # An index the user named is read, never completed or rebuilt here.
        index_dir = inputs.index_dir
        ingest = _existing_index(inputs.index_dir, inputs.clips)
    else:
        index_dir = cache_index_dir(inputs.clips, cache_dir)
        say(f"quality: index {index_dir} ({len(inputs.clips)} clips)")
        ingest = judged.ensure_index(inputs.clips, index_dir, reuse=True, workers=cfg.workers)
    missing = sorted(set(inputs.clips) - judged.indexed_clips(index_dir))
    if missing:
        raise InputError(f"clips failed to index into {index_dir}: {missing}",
                         hint=f"see `vidseek info --index {index_dir}` for the reasons")

    built: dict[str, QualityPeer] = {}
    peer_info: dict[str, Any] = {}
    docs = segment_texts(index_dir) if peer_names else []

    def peer(name: str) -> QualityPeer:
        # Built on first use, after vidseek's methods have run (judged.run goes method by
        # method): a peer's torch thread pool then cannot slow vidseek's timed queries
        # on a 2-core machine.
        if name not in built:
            t = time.perf_counter()
            built[name] = make_quality_peer(name, docs)
            peer_info[name] = {**built[name].describe(), "index_s": round(time.perf_counter() - t, 3),
                               "segments": len(docs)}
            built[name].search("warm up", judged.K)  # loads the model before any timed query
        return built[name]

    search_vidseek, close, warmup_s = judged.open_search(index_dir)

    def search(text: str, method: Method) -> Any:
        if method.name in peer_names:
            return peer(method.name).search(text, judged.K)
        return search_vidseek(text, method)

    all_methods = [*methods, *(_peer_method(n) for n in peer_names)]
    try:
        report, markdown, _failures = judged.run(list(inputs.queries), all_methods, search)
    finally:
        close()
    from engine.index import VideoIndex

    summary = report["summary"]
    metrics: list[Metric] = []
    for method, s in summary.items():
        for kind, agg in s["kinds"].items():
            for name in judged.METRICS:
                if agg.get(name) is not None:
                    metrics.append(Metric(f"quality/{method}/{kind}/{name}", round(agg[name], 6), "higher"))
        if s["took_ms"]["p50"] is not None:
            metrics.append(Metric(f"quality/{method}/took_p50_ms", s["took_ms"]["p50"], "lower", "ms"))
    index_config = VideoIndex.read_config(index_dir)
    config = {
        "origin": inputs.origin,
        "clips": sorted(inputs.clips),
        "queries": len(inputs.queries),
        "methods": [m.name for m in methods],
        "peers": peer_info,
        "peers_skipped": skipped,
        "index_dir": str(index_dir),
        "index_config": index_config.as_dict() if index_config else None,
        "ingest": ingest,
        "search_warmup_s": round(warmup_s, 3),
        "max_clips": cfg.max_clips,
        "max_media_seconds": cfg.max_media_seconds,
    }
    details = {
        "kinds": report["kinds"],
        "queries_by_kind": report["queries"]["by_kind"],
        "summary": summary,
        "markdown": markdown,
        "check_default": report["check_default"],
        "conventions": report["conventions"],
        "per_query": report["per_query"],
    }
    say(f"quality: {len(inputs.queries)} queries x {len(all_methods)} methods done")
    return SuiteResult("quality", config, metrics, details, time.perf_counter() - t_start)
