"""Ingest on one machine: files in, whole videos committed to an index.

- **reader** (``index_paths``): list the paths (``ingest.discover``), hash each file and
  ``ingest.decide`` what it needs: new, unchanged (skip), changed (re-index and drop the
  old version in the same transaction), or a duplicate of content already indexed.
- **mapper** (``indexer.mapper.analyse``): one video -> ``NewVideo`` through the stages
  (``indexer.stages``), in this process or in worker processes. On Linux the workers
  are forks of a fork server that imported what they need once (``WORKER_PRELOAD``);
  each loads its own models, and each dies with this process (``die_with_parent``).
- **writer**: ``ingest.commit`` commits each analysed video whole, records failures and
  runs the optional steps after it; the derived indexes are flushed every
  ``flush_every`` videos and at the end.

A rerun after a kill skips what was committed (content hash) and redoes the rest.
Progress goes to a callback as ``IngestEvent`` values (the CLI draws them).
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Sequence

from engine import accel
from engine.config import IndexConfig
from engine.index import VideoIndex
from indexer.ingest import (
    MEDIA_EXTENSIONS, Decision, EventFn, FileResult, IndexReport, IngestEvent, NotAFileError, commit, decide,
    discover, file_hash, open_writer, record_failure,
)
from indexer.mapper import Analysis, analyse, analyse_file, set_threads
from indexer.metadata import Sidecar, VideoMetadata, load_sidecar
from indexer.options import IndexOptions
from indexer.stages import Stage, build_stages

__all__ = ["IndexOptions", "FileResult", "IndexReport", "IngestEvent", "discover", "analyse", "index_paths",
           "plan_paths", "commit_todo", "file_hash", "MEDIA_EXTENSIONS", "die_with_parent", "Todo", "decide_all",
           "dispatch_order"]


@dataclass(frozen=True)
class Todo:
    """A file that needs analysis: its decision, sidecar metadata, bytes and header seconds."""

    decision: Decision
    meta: VideoMetadata | None
    size: int
    seconds: float  # media duration from the container header (0 when it says none)


def _media_seconds(path: str) -> float:
    """The duration the container header states, for the progress bar (which counts
    seconds of media: bytes say little, a 4K minute is 50x the bytes of a 480p one).
    Header only, no decoding; 0 when the header has none or the file does not open (the
    analysis reports why)."""
    import av

    try:
        with av.open(path, metadata_errors="ignore") as c:
            if c.duration:
                return max(0.0, c.duration / 1_000_000)
            v = c.streams.video[0] if c.streams.video else None
            if v is not None and v.duration and v.time_base:
                return max(0.0, float(v.duration * v.time_base))
    except Exception:  # any decoder error: the file's analysis reports it properly
        return 0.0
    return 0.0


def plan_paths(index: VideoIndex, paths: Sequence[str], metadata: str | Path | Sidecar | None,
               options: IndexOptions, report: IndexReport) -> list[Todo]:
    """The files under ``paths`` that need analysis, each decided once (new, changed,
    unchanged, duplicate) against ``index``: missing paths, FIFOs, devices and symlink
    loops are reported and recorded as failures; sidecar lines matching no file are
    reported. The single-process and the Ray paths both start here."""
    sidecar: Sidecar | None = metadata if isinstance(metadata, Sidecar) else (
        load_sidecar(metadata) if metadata else None)
    sources, refused = discover(paths)
    for r in refused:
        record_failure(index, r.source, r.code, r.reason, tenant=options.tenant)
    report.results.extend(refused)
    todo = decide_all(index, sources, options, sidecar, report)
    if sidecar is not None:
        report.unmatched_metadata = sidecar.unmatched()
    return todo


def index_paths(
    paths: Sequence[str],
    index_dir: str | Path,
    *,
    metadata: str | Path | Sidecar | None = None,
    config: IndexConfig | None = None,
    options: IndexOptions | None = None,
    progress: EventFn | None = None,
    stages: Sequence[Stage] | None = None,
) -> IndexReport:
    """Index files and folders into ``index_dir`` (created with ``config`` if needed; an
    existing index keeps its own settings). Never raises for a bad file: each failure is
    in the report and in the catalog's failure list. ``progress`` receives
    ``IngestEvent`` values; ``stages`` replaces ``build_stages(options)``."""
    options = options or IndexOptions()
    emit = progress or (lambda event: None)
    t_start = time.perf_counter()
    report = IndexReport()
    # Before any work: under device "cuda", a runtime that cannot reach a GPU fails here.
    report.devices = accel.plan(options.device, speech=options.speech)
    stages = list(stages) if stages is not None else build_stages(options)
    index = open_writer(index_dir, config)
    try:
        todo = plan_paths(index, paths, metadata, options, report)
        _run(todo, index, options, stages, report, emit)
        index.flush()
    finally:
        index.close()
    report.wall_seconds = time.perf_counter() - t_start
    return report


def decide_all(index: VideoIndex, sources: list[str], options: IndexOptions, sidecar: Sidecar | None,
                report: IndexReport) -> list[Todo]:
    """Hash and ``decide`` every source once; the skipped and refused go to ``report``,
    the rest (new or changed) come back in order. Shared by the distributed executor."""
    todo: list[Todo] = []
    batch: dict[str, str] = {}
    for src in sources:
        try:
            h = file_hash(src)  # regular files only, at most their size at open: never blocks
        except NotAFileError as e:  # replaced by a FIFO or device since discover() looked
            report.results.append(record_failure(index, src, e.code, str(e), tenant=options.tenant))
            continue
        except OSError as e:
            report.results.append(record_failure(index, src, "unreadable", f"{src} cannot be read: {e}",
                                                 tenant=options.tenant))
            continue
        meta = sidecar.lookup(src) if sidecar else None
        d = decide(index.catalog, src, h, tenant=options.tenant, batch=batch, meta=meta)
        if not d.needs_analysis:
            report.results.append(d.skipped())
            continue
        todo.append(Todo(d, meta, os.path.getsize(src), _media_seconds(src)))
    return todo


# -- workers -----------------------------------------------------------------------------
_worker_queue = None
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WATCH_PARENT_S = 1.0

# What a worker imports, imported once in the fork server (``_pool_context``) so that
# each worker starts as a fork of it instead of importing them again: the executor's
# entry points, the stages, the modules the stages import when they first run, and the
# model runtimes under them. A name missing here is imported by the worker itself
# (slower, never wrong); a name that fails to import is skipped by the fork server.
# Not here on purpose: torch and sentence-transformers, which no default stage uses.
WORKER_PRELOAD: tuple[str, ...] = (
    "indexer.pipeline", "indexer.stages", "indexer.mapper",
    "indexer.media", "indexer.shots", "indexer.reuse", "indexer.ocr", "indexer.speech",
    "indexer.human_models", "indexer.covers.faces", "indexer.picture", "indexer.thumbs",
    "indexer.labels", "indexer.face_tracks", "indexer.colours", "indexer.ocr_words",
    "engine.models.registry", "engine.models.imagenet", "engine.models.text", "engine.models.onnx_text",
    "numpy", "av", "cv2", "PIL.Image", "onnx", "onnxruntime", "rapidocr_onnxruntime", "ctranslate2",
    "faster_whisper", "tokenizers", "wordninja",
)


def _pool_context():
    """The multiprocessing context of the worker pool: ``forkserver`` on Linux,
    ``spawn`` elsewhere; never plain ``fork`` of this process, which may have run
    models (their thread pools do not survive a fork).

    The fork server is started once per process (by multiprocessing, at the first
    pool) and imports ``WORKER_PRELOAD``; each worker is a fork of it, so the imports
    are done once instead of once per worker, and their pages are shared until a
    worker writes them. It loads no model: a model is loaded in each worker, after the
    fork, as under spawn. Loading them in the server to share their weights was
    measured and not done (docs/ingest.md, "Worker start-up and memory"): a Whisper
    model loaded before a fork hangs the child's first transcription, and ONNX
    Runtime supports no session carried across a fork."""
    if sys.platform.startswith("linux") and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Read when the server starts; a later pool of this process reuses that server.
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        return ctx
    return mp.get_context("spawn")


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when the process ``parent_pid`` that started it
    does, even by SIGKILL, so a killed ``vidseek index`` leaves no worker decoding on.

    - ``parent_pid`` is watched through ``multiprocessing.parent_process()``'s
      sentinel: a pipe whose other end only that process holds, so it reads as closed
      the moment the process dies, whoever this process's OS parent is (under
      ``forkserver`` that is the fork server, not ``parent_pid``). A daemon thread
      waits on it and ends this process.
    - Linux, as well: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, delivered by the kernel
      when the OS parent dies (strictly: when the parent's thread that started this
      process ends; ``_run_pool`` starts and joins its workers in one thread, the fork
      server forks from its only thread). The fork server itself ends once the pool's
      process and every worker are gone (multiprocessing's "alive" pipe).
    - A process that multiprocessing did not start (no sentinel): a daemon thread
      polls the OS parent's pid, as the fallback."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watchdog below still runs
            pass
    sentinel = _parent_sentinel(parent_pid)
    if sentinel is not None:
        if mp.connection.wait([sentinel], timeout=0):  # it died before we looked
            os._exit(1)
        threading.Thread(target=_wait_parent, args=(sentinel,), name="vidseek-parent-watch", daemon=True).start()
        return
    if not _parent_alive(parent_pid):  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="vidseek-parent-watch", daemon=True).start()


def _parent_sentinel(parent_pid: int):
    """The sentinel of ``parent_pid`` when multiprocessing started this process from it."""
    parent = mp.parent_process()
    if parent is None or parent.pid != parent_pid:
        return None
    try:
        return parent.sentinel
    except ValueError:
        return None


def _wait_parent(sentinel) -> None:
    mp.connection.wait([sentinel])
    os._exit(1)


def _parent_alive(parent_pid: int) -> bool:
    # A child whose parent died is re-parented (to init or a subreaper): its ppid changes.
    return os.getppid() == parent_pid


def _watch_parent(parent_pid: int) -> None:
    while _parent_alive(parent_pid):
        time.sleep(_WATCH_PARENT_S)
    os._exit(1)


def _init_worker(parent_pid: int, threads: int, stages: list[Stage], queue) -> None:
    global _worker_queue
    die_with_parent(parent_pid)
    # Progress only: a worker's exit must not wait to flush it into a pipe nobody reads.
    queue.cancel_join_thread()
    _worker_queue = queue
    set_threads(threads, stages)


def _work(args) -> Analysis:
    source, content_hash, config, options, meta, stages = args

    def progress(stage: str, frac: float) -> None:
        if _worker_queue is not None:
            _worker_queue.put((os.getpid(), source, stage, frac))

    return analyse_file(source, content_hash, config, options, meta, progress, stages)


def _run(todo: list[Todo], index: VideoIndex, options: IndexOptions, stages: list[Stage], report: IndexReport,
         emit: EventFn) -> None:
    if not todo:
        return
    config = index.config
    workers = max(1, min(options.workers, len(todo)))
    threads = options.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    emit(IngestEvent("start", total=len(todo), total_bytes=sum(t.size for t in todo),
                     total_seconds=sum(t.seconds for t in todo)))
    state = {"done": 0, "committed": 0}

    def finish(item: Todo, analysis: Analysis) -> None:
        commit_todo(index, item, analysis, options, report, state, len(todo), emit)

    if workers == 1:
        set_threads(threads, stages)
        for item in todo:
            src = item.decision.source
            analysis = analyse_file(
                src, item.decision.content_hash, config, options, item.meta,
                lambda stage, frac, _s=src, _t=item.seconds: emit(IngestEvent("stage", source=_s, stage=stage,
                                                                              fraction=frac, seconds=_t)),
                stages,
            )
            finish(item, analysis)
    else:
        _run_pool(todo, config, options, stages, workers, threads, emit, finish)
    emit(IngestEvent("end", done=state["done"], failed=len(report.failed), total=len(todo)))


def commit_todo(index: VideoIndex, item: Todo, analysis: Analysis, options: IndexOptions, report: IndexReport,
                state: dict, total: int, emit: EventFn) -> None:
    """Commit one analysed file on the single writer (no save), count it in ``state``
    (``done``, ``committed``), flush every ``options.flush_every`` commits, and emit
    its ``file`` event. The single-process and the Ray ingest both commit here."""
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
    """Pass on the workers' progress messages waiting in ``queue``."""
    while True:
        try:
            pid, src, stage, frac = queue.get_nowait()
        except Empty:
            return
        emit(IngestEvent("stage", source=src, stage=stage, fraction=frac, worker=pid, seconds=seconds.get(src, 0.0)))


def dispatch_order(todo: list[Todo]) -> list[Todo]:
    """The order files go to the worker pool: longest media first (then largest). The
    pool hands the next file to whichever worker frees up, so a long file started last
    would leave the other workers idle at the end (longest-processing-time-first)."""
    return sorted(todo, key=lambda t: (-t.seconds, -t.size))


def _run_pool(todo: list[Todo], config: IndexConfig, options: IndexOptions, stages: list[Stage], workers: int,
              threads: int, emit: EventFn, finish) -> None:
    ctx = _pool_context()  # forkserver on Linux (imports shared), else spawn; never plain fork
    # A plain queue inherited by the workers (no manager process that could outlive us);
    # the workers die with this process, even on kill -9 (die_with_parent), and then
    # the fork server does.
    queue = ctx.Queue()
    try:
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(os.getpid(), threads, stages, queue)) as pool:
            futs = {pool.submit(_work, (t.decision.source, t.decision.content_hash, config, options, t.meta,
                                        stages)): t for t in dispatch_order(todo)}
            pending = set(futs)
            seconds = {t.decision.source: t.seconds for t in todo}
            while pending:
                finished, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                _drain(queue, emit, seconds)
                for f in finished:
                    item = futs[f]
                    try:
                        analysis = f.result()
                    except Exception as e:  # a worker process died (e.g. a decoder crash)
                        analysis = Analysis(item.decision.source, None, code="worker_crash",
                                            reason=f"{type(e).__name__}: {e}")
                    finish(item, analysis)
    finally:
        queue.close()
