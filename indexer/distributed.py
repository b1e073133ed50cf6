"""Ingest on a Ray cluster: files decided once on the driver, analysed as Ray tasks
across the cluster, committed one by one by the driver (the index's one writer).

- **reader** (driver): ``discover`` + ``decide_all`` exactly as ``index_paths`` does, so
  a file is new, changed, unchanged or a duplicate by the same rules everywhere.
- **mapper** (Ray tasks): ``analyse_file`` of one video per task, with the resources it
  asks for (``num_cpus``; ``num_gpus`` where the cluster has GPUs). A task whose worker
  process or node dies is retried by Ray (``max_retries``) on any live node; an
  analysis that fails on its own (a bad file) is a value, not retried, and goes to the
  failure list as in the single-machine path.
- **writer** (driver): ``ingest.commit`` of each finished analysis, in the order they
  finish: one catalog transaction per video, the op log, derived indexes flushed every
  ``flush_every`` commits and at the end. Nothing a worker does touches the index, so a
  worker dying mid-video can never leave half a video; a driver killed mid-run leaves
  the videos committed so far, and the next run skips them (content hash) and redoes
  the rest.

At most ``in_flight`` tasks are submitted at a time (default: twice the cluster's CPU
slots), so finished analyses do not pile up in the object store faster than the one
writer commits them. Progress: the driver emits the same ``IngestEvent`` stream as
``index_paths`` (``start``, ``file``, ``end``) and the tasks' ``stage`` events arrive
through a small Ray queue actor, so the CLI's bars show every node's videos.

The index folder only has to be reachable by the driver; workers read the media files
by their path, so the files must be at the same path on every node (a shared
filesystem), and every node runs the same vidseek and models (one image or venv).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

from engine.cluster import LOCAL, connect
from engine.config import IndexConfig
from engine.errors import InputError
from indexer.ingest import EventFn, IndexReport, IngestEvent, commit, discover, open_writer, record_failure
from indexer.mapper import Analysis, analyse_file, set_threads
from indexer.metadata import Sidecar, load_sidecar
from indexer.options import IndexOptions
from indexer.pipeline import Todo, decide_all
from indexer.stages import Stage, build_stages

__all__ = ["index_paths_ray", "RayIngestSettings", "DEFAULT_MAX_RETRIES"]

log = logging.getLogger("vidseek.indexer")

DEFAULT_MAX_RETRIES = 3  # a video's task is run again after its worker or node died, up to this many times
_threads_set: int | None = None  # the thread count this worker process was bound to (per process)


class RayIngestSettings:
    """What each analysis task asks the cluster for. ``num_cpus``: CPU slots per video
    (its models' threads follow it); ``num_gpus``: GPU share per video (None: 0 on a
    cluster without GPUs, else one GPU shared by the tasks that fit beside it);
    ``max_retries``: how often a task whose worker died is retried; ``in_flight``:
    tasks submitted at once (None: twice the CPU slots)."""

    def __init__(self, num_cpus: float = 1, num_gpus: float | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 in_flight: int | None = None) -> None:
        if num_cpus <= 0:
            raise InputError(f"num_cpus per ingest task must be > 0, got {num_cpus}")
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.in_flight = in_flight


def _analyse_task(source: str, content_hash: str, config: IndexConfig, options: IndexOptions, meta,
                  stages: list[Stage], threads: int, queue) -> Analysis:
    """One video's analysis in a Ray worker (no index access). Stage progress goes to
    ``queue`` (a ``ray.util.queue.Queue``), best effort."""
    import ray

    global _threads_set
    if _threads_set != threads:  # a worker process serves many tasks: bind its threads once
        set_threads(threads, stages)
        _threads_set = threads
    ctx = ray.get_runtime_context()
    worker = hash((ctx.get_node_id(), os.getpid())) & 0x7FFFFFFF

    def progress(stage: str, frac: float) -> None:
        if queue is None:
            return
        try:
            queue.put_nowait((worker, source, stage, frac))
        except Exception:  # a full or gone progress queue never fails an analysis
            pass

    return analyse_file(source, content_hash, config, options, meta, progress, stages)


def index_paths_ray(
    paths: Sequence[str],
    index_dir: str | Path,
    *,
    address: str | None = None,
    metadata: str | Path | Sidecar | None = None,
    config: IndexConfig | None = None,
    options: IndexOptions | None = None,
    progress: EventFn | None = None,
    stages: Sequence[Stage] | None = None,
    resources: RayIngestSettings | None = None,
) -> IndexReport:
    """``indexer.pipeline.index_paths`` with the analysis run as Ray tasks on the
    cluster at ``address`` (see ``connect``). Same report, same index, same rules:
    never raises for a bad file; each failure is in the report and the failure list."""
    options = options or IndexOptions()
    resources = resources or RayIngestSettings()
    emit = progress or (lambda event: None)
    t_start = time.perf_counter()
    report = IndexReport()
    sidecar: Sidecar | None = metadata if isinstance(metadata, Sidecar) else (
        load_sidecar(metadata) if metadata else None)
    stages = list(stages) if stages is not None else build_stages(options)
    index = open_writer(index_dir, config)
    connected = False
    try:
        sources, refused = discover(paths)
        for r in refused:
            record_failure(index, r.source, r.code, r.reason, tenant=options.tenant)
        report.results.extend(refused)
        todo = decide_all(index, sources, options, sidecar, report)
        if sidecar is not None:
            report.unmatched_metadata = sidecar.unmatched()
        if todo:
            connected = connect(address, num_cpus=options.workers if address in (None, "", LOCAL) else None)
            _run(todo, index, options, stages, resources, report, emit)
        index.flush()
    finally:
        index.close()
        if connected:
            import ray

            ray.shutdown()
    report.wall_seconds = time.perf_counter() - t_start
    return report


def _gpu_share(resources: RayIngestSettings, cluster: dict[str, float]) -> float:
    if resources.num_gpus is not None:
        return float(resources.num_gpus)
    gpus = cluster.get("GPU", 0.0)
    if gpus <= 0:
        return 0.0
    slots = max(1.0, cluster.get("CPU", 1.0) / resources.num_cpus)
    return min(1.0, gpus / slots)


def _run(todo: list[Todo], index, options: IndexOptions, stages: list[Stage], resources: RayIngestSettings,
         report: IndexReport, emit: EventFn) -> None:
    import ray
    from ray.util.queue import Queue

    cluster = ray.cluster_resources()
    slots = max(1, int(cluster.get("CPU", 1) // resources.num_cpus))
    in_flight = resources.in_flight or 2 * slots
    threads = options.threads_per_worker or max(1, int(resources.num_cpus))
    task = ray.remote(_analyse_task).options(
        num_cpus=resources.num_cpus, num_gpus=_gpu_share(resources, cluster),
        max_retries=resources.max_retries, retry_exceptions=False, name="vidseek-analyse")
    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
    config_ref, stages_ref, options_ref = ray.put(index.config), ray.put(stages), ray.put(options)
    emit(IngestEvent("start", total=len(todo), total_bytes=sum(t.size for t in todo),
                     total_seconds=sum(t.seconds for t in todo)))
    seconds = {t.decision.source: t.seconds for t in todo}
    state = {"done": 0, "committed": 0}
    waiting = list(reversed(todo))
    pending: dict[Any, Todo] = {}
    try:
        while waiting or pending:
            while waiting and len(pending) < in_flight:
                t = waiting.pop()
                ref = task.remote(t.decision.source, t.decision.content_hash, config_ref, options_ref, t.meta,
                                  stages_ref, threads, queue)
                pending[ref] = t
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            _drain(queue, emit, seconds)
            for ref in ready:
                item = pending.pop(ref)
                try:
                    analysis = ray.get(ref)
                except Exception as e:  # retries exhausted: its workers or nodes kept dying
                    analysis = Analysis(item.decision.source, None, code="worker_crash",
                                        reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                                               f" (after {resources.max_retries} retries)")
                _finish(index, item, analysis, options, report, state, len(todo), emit)
        _drain(queue, emit, seconds)
    finally:
        for ref in pending:  # the driver is leaving early (an error, Ctrl-C): stop the rest
            ray.cancel(ref, force=True)
        queue.shutdown()
    emit(IngestEvent("end", done=state["done"], failed=len(report.failed), total=len(todo)))


def _finish(index, item: Todo, analysis: Analysis, options: IndexOptions, report: IndexReport, state: dict,
            total: int, emit: EventFn) -> None:
    res = commit(index, item.decision, analysis, options, save=False)
    report.results.append(res)
    state["done"] += 1
    if res.status != "failed":
        state["committed"] += 1
        if state["committed"] % options.flush_every == 0:
            index.flush()
    emit(IngestEvent("file", source=item.decision.source, result=res, done=state["done"],
                     failed=len(report.failed), total=total, bytes=item.size, seconds=item.seconds))


def _drain(queue, emit: EventFn, seconds: dict[str, float]) -> None:
    """Pass on the tasks' stage events waiting in ``queue``."""
    try:
        items = queue.get_nowait_batch(queue.qsize())
    except Exception:  # empty, or the queue actor is gone: progress only
        return
    for worker, src, stage, frac in items:
        emit(IngestEvent("stage", source=src, stage=stage, fraction=frac, worker=worker,
                         seconds=seconds.get(src, 0.0)))
