"""Ingest on a Ray cluster: files decided once on the driver, analysed as Ray tasks
across the cluster, committed one by one by the driver (the index's one writer).

- **reader** (driver): ``discover`` + ``decide_all`` exactly as ``index_paths`` does, so
  a file is new, changed, unchanged or a duplicate by the same rules everywhere.
- **mapper** (Ray actors): one analysis actor per CPU slot of the cluster, each with
  the resources a video asks for (``num_cpus``; ``num_gpus`` where the cluster has
  GPUs), loading the models once and running ``analyse_file`` on one video per call.
  (Plain Ray tasks were tried first: Ray ended the idle worker between two tasks and
  started a fresh one, so every video loaded every model again.) A call whose actor's
  process or node dies is sent again to another actor (``max_retries`` times) while
  Ray restarts the dead one (``max_restarts=-1``) where there is room; an analysis
  that fails on its own (a bad file) is a value, not retried, and goes to the failure
  list as in the single-machine path.
- **writer** (driver): ``ingest.commit`` of each finished analysis, in the order they
  finish: one catalog transaction per video, the op log, derived indexes flushed every
  ``flush_every`` commits and at the end. Nothing a worker does touches the index, so a
  worker dying mid-video can never leave half a video; a driver killed mid-run leaves
  the videos committed so far, and the next run skips them (content hash) and redoes
  the rest.

Each actor holds one video at a time, so finished analyses never pile up in the object
store faster than the one writer commits them; actors are added when nodes join.
Progress: the driver emits the same ``IngestEvent`` stream as ``index_paths``
(``start``, ``file``, ``end``) and the actors' ``stage`` events arrive through a small
Ray queue actor, so the CLI's bars show every node's videos.

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
from indexer.ingest import EventFn, IndexReport, IngestEvent, open_writer
from indexer.mapper import Analysis, analyse_file, set_threads
from indexer.metadata import Sidecar
from indexer.options import IndexOptions
from indexer.pipeline import Todo, commit_todo, plan_paths
from indexer.stages import Stage, build_stages

__all__ = ["index_paths_ray", "RayIngestSettings", "DEFAULT_MAX_RETRIES"]

log = logging.getLogger("vidseek.indexer")

DEFAULT_MAX_RETRIES = 3  # a video is sent again after its worker or node died, up to this many times


class RayIngestSettings:
    """What each analysis actor asks the cluster for. ``num_cpus``: CPU slots (its
    models' threads follow it); ``num_gpus``: GPU share (None: 0 on a cluster without
    GPUs, else one GPU shared by the actors that fit beside it); ``max_retries``: how
    often a video whose worker died is sent again."""

    def __init__(self, num_cpus: float = 1, num_gpus: float | None = None,
                 max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if num_cpus <= 0:
            raise InputError(f"num_cpus per ingest task must be > 0, got {num_cpus}")
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries


class _Analyser:
    """The body of one analysis actor: a worker process that loads the stages' models
    once and analyses one video per call (no index access). Stage progress goes to
    ``queue`` (a ``ray.util.queue.Queue``), best effort."""

    def __init__(self, threads: int, stages: list[Stage]) -> None:
        set_threads(threads, stages)
        self.stages = stages

    def analyse(self, source: str, content_hash: str, config: IndexConfig, options: IndexOptions, meta,
                queue) -> Analysis:
        import ray

        # the progress bar's worker: this process on this node (pid plus a stable node number)
        worker = int(ray.get_runtime_context().get_node_id()[:6], 16) * 10_000_000 + os.getpid()

        def progress(stage: str, frac: float) -> None:
            if queue is None:
                return
            try:
                queue.put_nowait((worker, source, stage, frac))
            except Exception:  # a full or gone progress queue never fails an analysis
                pass

        return analyse_file(source, content_hash, config, options, meta, progress, self.stages)

    def ping(self) -> int:
        return os.getpid()


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
    stages = list(stages) if stages is not None else build_stages(options)
    index = open_writer(index_dir, config)
    connected = False
    try:
        todo = plan_paths(index, paths, metadata, options, report)
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


class _Worker:
    def __init__(self, handle) -> None:
        self.handle = handle
        self.busy = None  # the call in flight
        self.probe = None  # a ping in flight while Ray restarts the actor; None: usable


def _run(todo: list[Todo], index, options: IndexOptions, stages: list[Stage], resources: RayIngestSettings,
         report: IndexReport, emit: EventFn) -> None:
    """One analysis actor per CPU slot of the cluster (topped up when nodes join), one
    video at a time each, so the models load once per actor and not once per video.
    A call whose actor died (its process, or its node) is sent again to another actor
    (``max_retries`` times); Ray restarts the dead actor where there is room, and it
    takes work again once it answers a ping."""
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.util.queue import Queue

    threads = options.threads_per_worker or max(1, int(resources.num_cpus))
    cluster = ray.cluster_resources()
    actor = ray.remote(_Analyser).options(
        num_cpus=resources.num_cpus, num_gpus=_gpu_share(resources, cluster), max_restarts=-1, max_task_retries=0)
    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
    config_ref, options_ref = ray.put(index.config), ray.put(options)
    workers: list[_Worker] = []

    if int(cluster.get("CPU", 0) // resources.num_cpus) < 1:
        raise InputError(f"the Ray cluster has {cluster.get('CPU', 0):g} CPU slots; an analysis worker needs"
                         f" {resources.num_cpus:g}", hint="start a worker node: `ray start --address HEAD:6379`")

    def top_up() -> None:
        slots = int(ray.cluster_resources().get("CPU", 0) // resources.num_cpus)
        want = max(1, min(slots, len(todo)))
        while len(workers) < want:
            workers.append(_Worker(actor.remote(threads, stages)))

    emit(IngestEvent("start", total=len(todo), total_bytes=sum(t.size for t in todo),
                     total_seconds=sum(t.seconds for t in todo)))
    seconds = {t.decision.source: t.seconds for t in todo}
    state = {"done": 0, "committed": 0}
    waiting: list[tuple[Todo, int]] = [(t, 0) for t in reversed(todo)]  # (video, attempts so far)
    calls: dict[Any, tuple[_Worker, Todo, int]] = {}
    last_top_up = 0.0
    try:
        top_up()
        while waiting or calls:
            if time.monotonic() - last_top_up > 5.0:
                top_up()
                last_top_up = time.monotonic()
            for w in workers:
                if w.busy is None and w.probe is None and waiting:
                    item, tries = waiting.pop()
                    ref = w.handle.analyse.remote(item.decision.source, item.decision.content_hash, config_ref,
                                                  options_ref, item.meta, queue)
                    w.busy = ref
                    calls[ref] = (w, item, tries)
            probes = {w.probe: w for w in workers if w.probe is not None}
            ready, _ = ray.wait(list(calls) + list(probes), num_returns=1, timeout=0.2)
            _drain(queue, emit, seconds)
            for ref in ready:
                if ref in probes:
                    w = probes[ref]
                    try:
                        ray.get(ref)
                        w.probe = None  # restarted: back to work
                    except (RayActorError, ActorUnavailableError):
                        w.probe = w.handle.ping.remote()
                    continue
                w, item, tries = calls.pop(ref)
                w.busy = None
                try:
                    analysis = ray.get(ref)
                except (RayActorError, ActorUnavailableError) as e:  # its process or node died
                    w.probe = w.handle.ping.remote()
                    if tries < resources.max_retries:
                        log.warning("analysis of %s lost with its worker (%s); retrying", item.decision.source,
                                    type(e).__name__)
                        waiting.append((item, tries + 1))
                        continue
                    analysis = Analysis(item.decision.source, None, code="worker_crash",
                                        reason=f"its worker died {tries + 1} times ({type(e).__name__})")
                commit_todo(index, item, analysis, options, report, state, len(todo), emit)
        _drain(queue, emit, seconds)
    finally:
        for w in workers:  # done, or the driver is leaving early (an error, Ctrl-C)
            try:
                ray.kill(w.handle, no_restart=True)
            except Exception:  # already gone
                pass
        queue.shutdown()
    emit(IngestEvent("end", done=state["done"], failed=len(report.failed), total=len(todo)))


def _drain(queue, emit: EventFn, seconds: dict[str, float]) -> None:
    """Pass on the tasks' stage events waiting in ``queue``."""
    try:
        items = queue.get_nowait_batch(queue.qsize())
    except Exception:  # empty, or the queue actor is gone: progress only
        return
    for worker, src, stage, frac in items:
        emit(IngestEvent("stage", source=src, stage=stage, fraction=frac, worker=worker,
                         seconds=seconds.get(src, 0.0)))
