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
  list as in the single-machine path. ``AnalysisPool`` holds the actors and this
  loop; the service's ingest jobs (``api.jobs`` under ``vidseek serve --ray``) send
  their videos to the same pool, one blocking call per job thread, with a background
  thread driving it.
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

import itertools
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.cluster import LOCAL, connect
from engine.config import IndexConfig
from engine.errors import InputError, VidseekError
from indexer.ingest import EventFn, IndexReport, IngestEvent, open_writer
from indexer.mapper import Analysis, analyse_file, set_threads
from indexer.metadata import Sidecar
from indexer.options import IndexOptions
from indexer.pipeline import Todo, commit_todo, plan_paths
from indexer.stages import Stage, build_stages

__all__ = ["index_paths_ray", "RayIngestSettings", "DEFAULT_MAX_RETRIES", "AnalysisPool", "AnalysisCall"]

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
    once and analyses one video per call (no index access). ``stages``: the stages of
    every call (``vidseek index --ray``), or None to build each call's from its options
    (the service's jobs, whose options differ per job; the models are cached per
    process either way). Stage progress goes to ``queue`` (a ``ray.util.queue.Queue``),
    tagged with the call's ``tag``, best effort."""

    def __init__(self, threads: int, stages: list[Stage] | None) -> None:
        set_threads(threads, stages if stages is not None else build_stages(IndexOptions()))
        self.stages = stages

    def analyse(self, tag: int, source: str, content_hash: str, config: IndexConfig, options: IndexOptions, meta,
                queue) -> Analysis:
        import ray

        node = ray.get_runtime_context().get_node_id()
        # the progress bar's worker: this process on this node (pid plus a stable node number)
        worker = int(node[:6], 16) * 10_000_000 + os.getpid()
        label = f"{node[:8]}/{os.getpid()}"  # what a job shows: node id prefix / pid

        def progress(stage: str, frac: float) -> None:
            if queue is None:
                return
            try:
                queue.put_nowait((tag, worker, label, stage, frac))
            except Exception:  # a full or gone progress queue never fails an analysis
                pass

        stages = self.stages if self.stages is not None else build_stages(options)
        return analyse_file(source, content_hash, config, options, meta, progress, stages)

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
    # --device cpu: the actors take no GPU share even on a cluster that has GPUs.
    resources = resources or RayIngestSettings(num_gpus=0 if options.device == "cpu" else None)
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
            report.devices = _cluster_devices(options)
            _run(todo, index, options, stages, resources, report, emit)
        index.flush()
    finally:
        index.close()
        if connected:
            import ray

            ray.shutdown()
    report.wall_seconds = time.perf_counter() - t_start
    return report


def _cluster_devices(options: IndexOptions) -> dict[str, str]:
    """Where the actors' models run, as far as the driver can tell: the setting and the
    cluster's GPUs. Under ``cuda`` a cluster without GPUs is refused before any work
    (each node's runtimes then check their own GPU as the models load)."""
    import ray

    from engine.accel import DeviceError, current_device

    setting = options.device or current_device()
    gpus = ray.cluster_resources().get("GPU", 0.0)
    if setting == "cuda" and gpus <= 0:
        raise DeviceError("device 'cuda' asked for, and the Ray cluster has no GPU",
                          hint="start nodes with GPUs (`ray start --num-gpus N`), or run with --device cpu")
    return {"setting": setting, "cluster_gpus": f"{gpus:g}"}


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


StageFn = Callable[[str, float, int, str], None]  # (stage, fraction, worker number, worker label)
RetryFn = Callable[[int, str], None]  # (attempt that comes next, why the last one was lost)


class AnalysisCall:
    """One video sent to an ``AnalysisPool``: its arguments, its attempts, the worker
    that reported last, and, once ``done``, its ``analysis`` (a failure is an
    ``Analysis`` with a code: a bad file, or ``worker_crash`` when every attempt's
    worker died; ``cancelled`` calls get one with code ``cancelled``)."""

    def __init__(self, tag: int, source: str, content_hash: str, config, options, meta,
                 on_stage: StageFn | None, on_retry: RetryFn | None) -> None:
        self.tag = tag
        self.source, self.content_hash = source, content_hash
        self.config, self.options, self.meta = config, options, meta
        self.on_stage, self.on_retry = on_stage, on_retry
        self.lost = 0  # attempts lost with their worker
        self.attempt = 0  # attempts started on an actor
        self.worker: str | None = None  # "node/pid" of the actor that reported progress last
        self.analysis: Analysis | None = None
        self.cancelled = False
        self.done = threading.Event()

    def wait(self, should_stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2) -> Analysis | None:
        """Block until the analysis is done (returns it) or ``should_stop`` says so
        (returns None; the caller cancels). The pool must be pumped meanwhile
        (``AnalysisPool.start_pump``)."""
        while not self.done.wait(poll_s):
            if should_stop():
                return None
        return self.analysis


class AnalysisPool:
    """Analysis actors on the connected Ray cluster, shared by every video sent to it:
    one actor per CPU slot (``resources.num_cpus`` each), up to ``max_actors``, started
    as the videos in flight need them and topped up when nodes join, each analysing one
    video at a time with its models loaded once. ``vidseek index --ray`` and the
    service's ingest jobs both run their analyses here.

    ``submit`` queues a video; ``step`` sends queued videos to free actors, waits up to
    a timeout, passes on the actors' stage events (each call's ``on_stage``) and returns
    the calls that finished. A call whose actor process or node died is sent again to
    another actor, first in line, up to ``resources.max_retries`` times (``on_retry``
    says so), while Ray restarts the dead actor (``max_restarts=-1``), which takes work
    again once it answers a ping; past the retries it finishes as ``worker_crash``.
    Nothing here touches an index: the caller commits.

    One thread drives ``step`` (the CLI's loop, or the pump thread of ``start_pump``);
    ``submit`` and ``cancel`` may come from any thread. ``reserved_cpus``: CPU slots of
    the cluster the pool leaves to others (the service's search replicas)."""

    def __init__(self, resources: RayIngestSettings | None = None, stages: Sequence[Stage] | None = None,
                 threads: int | None = None, *, max_actors: int | None = None, reserved_cpus: float = 0.0) -> None:
        import ray
        from ray.util.queue import Queue

        self.resources = resources or RayIngestSettings()
        self.stages = list(stages) if stages is not None else None
        self.threads = threads or max(1, int(self.resources.num_cpus))
        self.max_actors = max_actors
        cluster = ray.cluster_resources()
        total = cluster.get("CPU", 0.0)
        self._reserved = max(0.0, float(reserved_cpus))
        if self.slots() < 1:
            held = f", {self._reserved:g} of them left to the search replicas" if self._reserved else ""
            raise InputError(f"the Ray cluster has {total:g} CPU slots{held}; an analysis worker needs"
                             f" {self.resources.num_cpus:g}", hint="start a worker node: `ray start --address HEAD:6379`")
        self._actor = ray.remote(_Analyser).options(
            num_cpus=self.resources.num_cpus, num_gpus=_gpu_share(self.resources, cluster), max_restarts=-1,
            max_task_retries=0)
        self._queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
        self._lock = threading.RLock()
        self._workers: list[_Worker] = []
        self._waiting: deque[AnalysisCall] = deque()
        self._calls: dict[Any, tuple[_Worker, AnalysisCall]] = {}  # ref -> (its actor, the call)
        self._by_tag: dict[int, AnalysisCall] = {}
        self._tags = itertools.count(1)
        self._puts: dict[int, tuple[Any, Any]] = {}  # id(object) -> (object, its object ref)
        self._last_top_up = 0.0
        self._pump: threading.Thread | None = None
        self._closed = threading.Event()

    # -- capacity ----------------------------------------------------------------------
    def slots(self) -> int:
        """Videos the pool analyses at once now: the cluster's CPU slots (less the
        reserved ones) over ``num_cpus``, at most ``max_actors``."""
        import ray

        n = int(max(0.0, ray.cluster_resources().get("CPU", 0.0) - self._reserved) // self.resources.num_cpus)
        return min(n, self.max_actors) if self.max_actors is not None else n

    @property
    def actors(self) -> int:
        return len(self._workers)

    def _top_up(self) -> None:
        """An actor for each video in flight or waiting, up to ``slots()`` (at least one,
        so that work never waits for a node that may not come); never fewer than now."""
        demand = len(self._waiting) + len(self._calls)
        want = max(1, min(self.slots(), demand)) if demand else 0
        while len(self._workers) < want:
            self._workers.append(_Worker(self._actor.remote(self.threads, self.stages)))

    # -- calls ---------------------------------------------------------------------------
    def submit(self, source: str, content_hash: str, config: IndexConfig, options: IndexOptions, meta=None, *,
               on_stage: StageFn | None = None, on_retry: RetryFn | None = None) -> AnalysisCall:
        """Queue one video; its ``AnalysisCall`` finishes through ``step``."""
        with self._lock:
            if self._closed.is_set():
                raise VidseekError("the analysis pool is closed", hint="the service is stopping; retry after restart")
            call = AnalysisCall(next(self._tags), source, content_hash, self._put(config), self._put(options), meta,
                                on_stage, on_retry)
            self._waiting.append(call)
            self._by_tag[call.tag] = call
            self._last_top_up = 0.0  # top up at the next step: the demand grew
        return call

    def cancel(self, call: AnalysisCall) -> None:
        """Give up on ``call``: taken out of the line, or, when an actor runs it, its
        result is dropped (the actor finishes the video and takes the next)."""
        with self._lock:
            call.cancelled = True
            if call in self._waiting:
                self._waiting.remove(call)
                self._finish(call, Analysis(call.source, None, code="cancelled", reason="cancelled"))

    def _put(self, obj):
        """``ray.put`` once per object (the index's config and a run's options are the
        same objects for every video of a run)."""
        import ray

        got = self._puts.get(id(obj))
        if got is None or got[0] is not obj:
            if len(self._puts) > 256:
                self._puts.clear()
            got = (obj, ray.put(obj))
            self._puts[id(obj)] = got
        return got[1]

    def _finish(self, call: AnalysisCall, analysis: Analysis) -> None:
        call.analysis = analysis
        self._by_tag.pop(call.tag, None)
        call.done.set()

    # -- the loop ------------------------------------------------------------------------
    def step(self, timeout: float = 0.2) -> list[AnalysisCall]:
        """Send waiting videos to free actors, wait up to ``timeout`` for results, pass
        on the stage events, and return the calls that finished (cancelled ones
        excepted)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        retries: list[tuple[AnalysisCall, str]] = []
        with self._lock:
            if time.monotonic() - self._last_top_up > 5.0:
                self._top_up()
                self._last_top_up = time.monotonic()
            for w in self._workers:
                if w.busy is None and w.probe is None and self._waiting:
                    call = self._waiting.popleft()
                    ref = w.handle.analyse.remote(call.tag, call.source, call.content_hash, call.config, call.options,
                                                  call.meta, self._queue)
                    call.attempt += 1
                    w.busy = ref
                    self._calls[ref] = (w, call)
            probes = {w.probe: w for w in self._workers if w.probe is not None}
            refs = list(self._calls) + list(probes)
        if not refs:
            self._closed.wait(timeout)
            return []
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        self._drain()
        finished: list[AnalysisCall] = []
        with self._lock:
            for ref in ready:
                if ref in probes:
                    w = probes[ref]
                    try:
                        ray.get(ref)
                        w.probe = None  # restarted: back to work
                    except (RayActorError, ActorUnavailableError):
                        w.probe = w.handle.ping.remote()
                    continue
                w, call = self._calls.pop(ref)
                w.busy = None
                try:
                    analysis = ray.get(ref)
                except _lost_errors() as e:  # its process or node died
                    w.probe = w.handle.ping.remote()
                    why = type(e).__name__
                    if not call.cancelled and call.lost < self.resources.max_retries:
                        call.lost += 1
                        log.warning("analysis of %s lost with its worker (%s); retrying", call.source, why)
                        self._waiting.appendleft(call)
                        retries.append((call, why))
                        continue
                    analysis = Analysis(call.source, None, code="worker_crash",
                                        reason=f"its Ray worker died {call.lost + 1} times ({why}); nothing of it"
                                               " was committed")
                except Exception as e:  # Ray could not run the call at all (e.g. arguments that do not unpickle)
                    analysis = Analysis(call.source, None, code="internal_error", reason=f"{type(e).__name__}: {e}")
                self._finish(call, analysis)
                if not call.cancelled:
                    finished.append(call)
        for call, why in retries:
            if call.on_retry is not None:
                call.on_retry(call.lost + 1, why)
        return finished

    def _drain(self) -> None:
        """Pass on the actors' stage events waiting in the progress queue."""
        try:
            items = self._queue.get_nowait_batch(self._queue.qsize())
        except Exception:  # empty, or the queue actor is gone: progress only
            return
        for tag, worker, label, stage, frac in items:
            call = self._by_tag.get(tag)
            if call is None or call.cancelled:
                continue
            call.worker = label
            if call.on_stage is not None:
                try:
                    call.on_stage(stage, frac, worker, label)
                except Exception:  # a progress consumer never stops the pool
                    log.exception("progress of %s", call.source)

    def start_pump(self) -> None:
        """Drive ``step`` from a background thread until ``close`` (for callers that
        block in ``AnalysisCall.wait``, e.g. one thread per service job)."""
        def pump() -> None:
            while not self._closed.is_set():
                try:
                    self.step(0.2)
                except Exception:  # the cluster went away mid-call: keep serving what remains
                    if self._closed.is_set():
                        return
                    log.exception("analysis pool step failed")
                    time.sleep(1.0)

        with self._lock:
            if self._pump is None:
                self._pump = threading.Thread(target=pump, name="vidseek-ray-ingest", daemon=True)
                self._pump.start()

    def close(self) -> None:
        """Stop the pump, end every actor and the progress queue; calls not finished
        end as ``cancelled``."""
        import ray

        self._closed.set()
        if self._pump is not None and self._pump is not threading.current_thread():
            self._pump.join(10.0)
        with self._lock:
            for w in self._workers:  # done, or the caller is leaving early (an error, Ctrl-C)
                try:
                    ray.kill(w.handle, no_restart=True)
                except Exception:  # already gone
                    pass
            self._workers = []
            pending = [c for _, c in self._calls.values()] + list(self._waiting)
            self._calls.clear()
            self._waiting.clear()
            for call in pending:
                call.cancelled = True
                self._finish(call, Analysis(call.source, None, code="cancelled", reason="the analysis pool closed"))
        try:
            self._queue.shutdown()
        except Exception:  # the cluster is gone already
            pass


_LOST: tuple[type[BaseException], ...] = ()


def _lost_errors() -> tuple[type[BaseException], ...]:
    """The errors of a call whose actor process or node died (it is sent again)."""
    global _LOST
    from ray import exceptions as rx

    if not _LOST:
        names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
                 "OutOfMemoryError", "LocalRayletDiedError")
        _LOST = tuple(getattr(rx, n) for n in names if hasattr(rx, n))
    return _LOST


def _run(todo: list[Todo], index, options: IndexOptions, stages: list[Stage], resources: RayIngestSettings,
         report: IndexReport, emit: EventFn) -> None:
    """Every video of ``todo`` through one ``AnalysisPool`` (one actor per CPU slot,
    topped up when nodes join, one video at a time each, so the models load once per
    actor and not once per video), each committed here as it finishes."""
    threads = options.threads_per_worker or max(1, int(resources.num_cpus))
    pool = AnalysisPool(resources, stages, threads)
    emit(IngestEvent("start", total=len(todo), total_bytes=sum(t.size for t in todo),
                     total_seconds=sum(t.seconds for t in todo)))
    state = {"done": 0, "committed": 0}
    try:
        calls: dict[AnalysisCall, Todo] = {}
        for t in todo:
            def on_stage(stage: str, frac: float, worker: int, label: str, t: Todo = t) -> None:
                emit(IngestEvent("stage", source=t.decision.source, stage=stage, fraction=frac, worker=worker,
                                 seconds=t.seconds))

            call = pool.submit(t.decision.source, t.decision.content_hash, index.config, options, t.meta,
                               on_stage=on_stage)
            calls[call] = t
        while calls:
            for call in pool.step(0.2):
                commit_todo(index, calls.pop(call), call.analysis, options, report, state, len(todo), emit)
    finally:
        pool.close()
    emit(IngestEvent("end", done=state["done"], failed=len(report.failed), total=len(todo)))
