"""Ingest: files in, whole videos committed to an index. Reader -> mapper -> writer.

- **reader** (``plan``): walk the paths, hash each file, and decide per file: new,
  unchanged (skip), changed (re-index and drop the old version in the same
  transaction), or a duplicate of content already indexed (skip).
- **mapper** (``analyse``): one video -> ``NewVideo``: probe, shots and segments,
  keyframes, visual embeddings and labels, gated OCR, speech, text embeddings.
  Pure with respect to the index, so it runs in worker processes (and could run
  per partition on a distributed engine); each stage is timed.
- **writer** (``index_paths``): commits each analysed video whole through
  ``engine.index.VideoIndex`` (one catalog transaction), records failures, and
  flushes the derived indexes.

A rerun after a kill skips what was committed (content hash) and redoes the rest.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from engine.catalog import NewSegment, NewVideo
from engine.config import IndexConfig
from engine.errors import MediaError, NotFoundError, VidseekError
from engine.index import VideoIndex
from indexer.metadata import Sidecar, VideoMetadata, load_sidecar
from indexer.reuse import ALGO as REUSE_ALGO
from indexer.reuse import FingerprintTap

__all__ = ["IndexOptions", "FileResult", "IndexReport", "discover", "analyse", "index_paths", "file_hash"]

log = logging.getLogger("vidseek.indexer")

# Folder walks take files with these extensions (explicit file arguments are always
# probed, whatever their name). Content is still checked by probing.
MEDIA_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts",
    ".ogg", ".ogv", ".flv", ".wmv", ".asf", ".3gp", ".3g2", ".mxf", ".vob", ".dv", ".f4v", ".h264", ".264",
    ".hevc", ".y4m", ".gif",
}

ProgressFn = Callable[[str, float], None]  # (stage, fraction of this video done)


@dataclass(frozen=True)
class IndexOptions:
    """How videos are analysed. Documented defaults; see README "Indexing"."""

    tenant: str = "default"
    workers: int = 1
    threads_per_worker: int | None = None  # default: cores // workers
    segment_max: float = 10.0  # long shots are split into windows of at most this
    segment_min: float = 1.5  # shorter shots merge into a neighbour
    cut_fps: float = 4.0  # frame sampling rate for shot detection
    speech: bool = True
    speech_model: str = "whisper-base"
    language: str | None = None
    ocr: bool = True
    visual: bool = True
    visual_labels: int = 5
    max_bytes: int | None = None  # refuse files larger than this
    flush_every: int = 25  # save derived indexes every N committed videos
    graph: bool = True  # after each commit: entities, edges, reused footage (indexer.entities)


@dataclass
class FileResult:
    source: str
    status: str  # indexed | replaced | skipped | duplicate | failed
    video_id: str | None = None
    reason: str | None = None
    code: str | None = None
    duration: float = 0.0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class IndexReport:
    results: list[FileResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    def stage_totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.results:
            for k, v in r.stages.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def summary(self) -> dict:
        by: dict[str, int] = {}
        for r in self.results:
            by[r.status] = by.get(r.status, 0) + 1
        media = sum(r.duration for r in self.results if r.status in ("indexed", "replaced"))
        return {
            "files": len(self.results),
            "by_status": by,
            "media_seconds": round(media, 2),
            "wall_seconds": round(self.wall_seconds, 2),
            "speed_x_realtime": round(media / self.wall_seconds, 2) if self.wall_seconds > 0 else None,
            "stage_seconds": {k: round(v, 2) for k, v in sorted(self.stage_totals().items())},
            "failures": [{"source": r.source, "code": r.code, "reason": r.reason} for r in self.failed],
        }


# -- reader ----------------------------------------------------------------------------
def discover(paths: Sequence[str]) -> tuple[list[str], list[FileResult]]:
    """Expand folders (recursively, media extensions only, sorted); keep files as given.

    Returns (sources, failures for paths that do not exist)."""
    sources: list[str] = []
    missing: list[FileResult] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith(".") and os.path.splitext(f)[1].lower() in MEDIA_EXTENSIONS:
                        sources.append(os.path.join(root, f))
        elif os.path.exists(p):
            sources.append(p)
        else:
            missing.append(FileResult(p, "failed", reason=f"{p} does not exist", code=NotFoundError.code))
    seen: set[str] = set()
    uniq = [s for s in sources if not (s in seen or seen.add(s))]
    return uniq, missing


def file_hash(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- mapper ----------------------------------------------------------------------------
class _Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self_inner):
                self_inner.t0 = time.perf_counter()

            def __exit__(self_inner, *exc):
                timer.stages[name] = timer.stages.get(name, 0.0) + time.perf_counter() - self_inner.t0

        return _Ctx()


_CUT_SIDE = 160  # long side of the frames the cut detector samples (its default)


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def analyse(
    source: str,
    content_hash: str,
    config: IndexConfig,
    options: IndexOptions,
    meta: VideoMetadata | None = None,
    progress: ProgressFn | None = None,
    fingerprint: FingerprintTap | None = None,
) -> NewVideo:
    """The mapper: one file -> a complete ``NewVideo`` (nothing written anywhere).

    ``fingerprint``: a reused-footage tap fed with the cut detector's frames, so that
    the graph stage need not decode the video again (read ``fingerprint.result()``
    afterwards); left unfed when the cut sampling does not fit it.
    """
    from engine.models.registry import get_image_encoder, get_text_encoder
    from indexer import media, shots

    timer = _Timer()
    say = progress or (lambda stage, frac: None)
    path = source
    st = os.stat(path)

    say("probe", 0.0)
    with timer("probe"):
        info = media.probe(path)
    if options.max_bytes is not None and info.size_bytes > options.max_bytes:
        raise MediaError(
            f"{source} is {info.size_bytes} bytes, over the limit of {options.max_bytes}",
            hint="raise --max-bytes or split the file",
        )
    duration = float(info.duration)

    say("shots", 0.05)
    with timer("shots"):
        if fingerprint is not None and fingerprint.fits(options.cut_fps, _CUT_SIDE, fingerprint.options):
            samples = media.sample_frames(path, fps=options.cut_fps, max_side=_CUT_SIDE)
            cuts = shots.detect_cuts(fingerprint.tap(samples), fps=options.cut_fps)
        else:
            cuts = shots.detect_cuts(path, fps=options.cut_fps, max_side=_CUT_SIDE)
        shot_list, segs = shots.segment(duration, cuts, max_len=options.segment_max, min_len=options.segment_min)

    text_enc = get_text_encoder(config.text_encoder)
    kf_vectors: dict[float, np.ndarray] = {}
    kf_labels: dict[float, list] = {}
    ocr_by_t: dict[float, str] = {}
    times = sorted({float(t) for s in segs for t in s.keyframe_times})

    if (options.visual or options.ocr) and times:
        say("keyframes", 0.15)
        with timer("keyframes"):
            frames = list(media.frames_at(path, times, size=1280))
        if options.visual:
            say("visual", 0.3)
            img_enc = get_image_encoder(config.image_encoder, **config.image_options)
            with timer("visual"):
                rgb = [f for _, f in frames]
                if hasattr(img_enc, "encode_with_labels"):  # one classifier pass for both
                    vecs, labels = img_enc.encode_with_labels(rgb, top=options.visual_labels)
                else:
                    vecs = img_enc.encode_images(rgb)
                    labels = img_enc.labels(rgb, top=options.visual_labels)
            for (t, _), v, lab in zip(frames, vecs, labels):
                kf_vectors[t] = v
                kf_labels[t] = [[name, round(float(p), 4)] for name, p in lab]
        if options.ocr:
            say("ocr", 0.45)
            from indexer import ocr

            with timer("ocr"):
                for t, lines in ocr.ocr_frames(frames):
                    ocr_by_t[t] = " ".join(line.text for line in lines)
        # Map requested times to the decoded frames' actual times, in order.
        actual = [t for t, _ in frames]
    else:
        actual = []
    req_to_actual = dict(zip(times, actual))

    seg_texts: list[str] = [""] * len(segs)
    seg_words: list[list] = [[] for _ in segs]
    language, language_prob = None, None
    if options.speech and info.has_audio:
        from indexer import speech

        say("audio", 0.55)
        with timer("audio"):
            audio = media.load_audio(path, sr=16000)
        say("speech", 0.6)
        with timer("speech"):
            tr = speech.transcribe(audio, model=options.speech_model, language=options.language)
        language, language_prob = tr.language, tr.language_probability
        ranges = [(s.start, s.end) for s in segs]
        seg_texts = speech.assign_to_segments(tr, ranges)
        seg_words = [
            [[round(w.start, 3), round(w.end, 3), w.word] for w in ws]
            for ws in speech.assign_words_to_segments(tr, ranges)
        ]

    say("text", 0.9)
    with timer("text_embed"):
        new_segs: list[NewSegment] = []
        ocr_texts: list[str] = []
        for s in segs:
            kts = [req_to_actual.get(float(t)) for t in s.keyframe_times]
            seen: list[str] = []
            for t in kts:
                txt = ocr_by_t.get(t, "") if t is not None else ""
                if txt and txt not in seen:
                    seen.append(txt)
            ocr_texts.append(" ".join(seen))
        to_embed = [t for t in seg_texts if t.strip()] + [t for t in ocr_texts if t.strip()]
        meta_text = meta.text() if meta else ""
        if meta_text:
            to_embed.append(meta_text)
        emb = text_enc.encode(to_embed) if to_embed else np.zeros((0, text_enc.info.dim), np.float32)
        it = iter(emb)
        speech_vecs = [next(it) if t.strip() else None for t in seg_texts]
        ocr_vecs = [next(it) if t.strip() else None for t in ocr_texts]
        meta_vec = next(it) if meta_text else None
        for i, s in enumerate(segs):
            vectors: dict[str, np.ndarray] = {}
            kts = [req_to_actual.get(float(t)) for t in s.keyframe_times]
            kvs = [kf_vectors[t] for t in kts if t is not None and t in kf_vectors]
            if kvs:
                vectors["visual"] = _normalise_rows(np.mean(kvs, axis=0, keepdims=True))[0]
            if speech_vecs[i] is not None:
                vectors["speech"] = speech_vecs[i]
            if ocr_vecs[i] is not None:
                vectors["ocr"] = ocr_vecs[i]
            if meta_vec is not None:
                vectors["metadata"] = meta_vec
            merged: dict[str, float] = {}
            for t in kts:
                for name, p in kf_labels.get(t, []) if t is not None else []:
                    merged[name] = max(merged.get(name, 0.0), p)
            labels = sorted(([k, v] for k, v in merged.items()), key=lambda x: -x[1])[: options.visual_labels]
            new_segs.append(
                NewSegment(
                    start=float(s.start), end=float(s.end), shot_index=int(s.shot_index),
                    transcript=seg_texts[i], words=seg_words[i], ocr_text=ocr_texts[i], labels=labels,
                    vectors=vectors,
                    keyframes=[(t, kf_labels.get(t, []), kf_vectors.get(t)) for t in kts if t is not None],
                )
            )
    say("done", 1.0)
    return NewVideo(
        source=source, content_hash=content_hash, tenant=options.tenant, size_bytes=info.size_bytes,
        mtime=st.st_mtime, title=meta.title if meta else None, description=meta.description if meta else None,
        tags=meta.tags if meta else [], people=meta.people if meta else [], extra=meta.extra if meta else {},
        duration=duration, width=info.width, height=info.height, fps=info.fps, container=info.container,
        video_codec=info.video_codec, audio_codec=info.audio_codec, has_audio=bool(info.has_audio),
        language=language, language_prob=language_prob,
        stats={
            "stages": {k: round(v, 4) for k, v in timer.stages.items()},
            "cuts": [round(c, 3) for c in cuts],
            "has_text": any(t.strip() for t in ocr_texts),
            "has_speech": any(t.strip() for t in seg_texts),
        },
        shots=[(float(a.start), float(a.end)) for a in shot_list], segments=new_segs,
    )


# -- workers -----------------------------------------------------------------------------
_worker_queue = None


def _init_threads(threads: int) -> None:
    """Bound the intra-op threads of this process (a worker's share of the cores)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by libraries loaded after this
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    # ONNX Runtime (OCR) and CTranslate2 (Whisper) ignore OMP_NUM_THREADS and default
    # to every core: with two workers on 2 cores that oversubscribes them.
    from indexer import ocr, speech

    ocr.set_num_threads(threads)
    speech.set_num_threads(threads)


def _init_worker(threads: int, queue) -> None:
    global _worker_queue
    _worker_queue = queue
    _init_threads(threads)


Fingerprint = tuple[np.ndarray, np.ndarray]  # reused-footage (times, hashes), see indexer.reuse


def _analyse_safely(source: str, content_hash: str, config: IndexConfig, options: IndexOptions,
                    meta: VideoMetadata | None, progress: ProgressFn | None
                    ) -> tuple[NewVideo | None, str | None, str | None, float, Fingerprint | None]:
    """``analyse`` that turns any failure into (None, code, reason): one bad file must
    not stop the batch. Returns (video, error code, reason, seconds, fingerprint): the
    fingerprint, when the graph stage is on, comes from the cut detector's frames,
    for the writer to store before the graph stage (which then does not decode)."""
    t0 = time.perf_counter()
    tap = FingerprintTap() if options.graph else None
    try:
        video = analyse(source, content_hash, config, options, meta, progress, fingerprint=tap)
        fp = None
        if tap is not None and tap.fits(options.cut_fps, _CUT_SIDE, tap.options):
            t1 = time.perf_counter()
            fp = tap.result()
            video.stats.setdefault("stages", {})["fingerprint"] = round(time.perf_counter() - t1, 4)
        return video, None, None, time.perf_counter() - t0, fp
    except VidseekError as e:
        return None, e.code, str(e), time.perf_counter() - t0, None
    except Exception as e:  # a decoder or model failure
        log.error("unexpected error on %s:\n%s", source, traceback.format_exc())
        return None, "internal_error", f"{type(e).__name__}: {e}", time.perf_counter() - t0, None


def _work(args) -> tuple[str, NewVideo | None, str | None, str | None, float, Fingerprint | None]:
    source, content_hash, config, options, meta = args

    def progress(stage: str, frac: float) -> None:
        if _worker_queue is not None:
            _worker_queue.put((os.getpid(), source, stage, frac))

    return (source, *_analyse_safely(source, content_hash, config, options, meta, progress))


def _video_bar(position: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=100, position=position, leave=False, disable=not show,
                bar_format="{desc:<40.40} {percentage:3.0f}%|{bar}|", file=sys.stderr)


def _show(bar, source: str, stage: str, frac: float) -> None:
    bar.set_description_str(f"{os.path.basename(source)}: {stage}")
    bar.n = int(frac * 100)
    bar.refresh()


# -- writer ------------------------------------------------------------------------------
def index_paths(
    paths: Sequence[str],
    index_dir: str | Path,
    *,
    metadata: str | Path | None = None,
    config: IndexConfig | None = None,
    options: IndexOptions | None = None,
    show_progress: bool = True,
) -> IndexReport:
    """Index files and folders into ``index_dir`` (created if needed). Never raises for
    a bad file: each failure is in the report and in the catalog's failure list."""
    from engine.models.registry import get_image_encoder, get_text_encoder

    options = options or IndexOptions()
    t_start = time.perf_counter()
    report = IndexReport()
    sidecar: Sidecar | None = load_sidecar(metadata) if metadata else None
    idx_path = Path(index_dir)
    existing = VideoIndex.read_config(idx_path)
    if existing is not None:  # an existing index keeps the settings it was built with
        config = existing
    config = config or IndexConfig()
    encoders = {
        "text": get_text_encoder(config.text_encoder).info,
        "image": get_image_encoder(config.image_encoder, **config.image_options).info,
    }
    index = VideoIndex.open(idx_path, writer=True, config=config, encoders=encoders)
    try:
        sources, missing = discover(paths)
        for r in missing:
            index.catalog.record_failure(r.source, r.code or "not_found", r.reason or "", tenant=options.tenant)
        report.results.extend(missing)
        todo = []
        batch_hashes: dict[str, str] = {}
        for src in sources:
            try:
                h = file_hash(src)
            except OSError as e:
                res = FileResult(src, "failed", reason=f"{src} cannot be read: {e}", code="unreadable")
                index.catalog.record_failure(src, res.code, res.reason, tenant=options.tenant)
                report.results.append(res)
                continue
            same_src = index.catalog.find_by_source(src, tenant=options.tenant)
            if same_src is not None and same_src.content_hash == h:
                report.results.append(FileResult(src, "skipped", same_src.video_id, "unchanged since last index"))
                continue
            dup = index.catalog.find_by_hash(h, tenant=options.tenant)
            if dup is not None and (same_src is None or dup.key != same_src.key):
                report.results.append(
                    FileResult(src, "duplicate", dup.video_id, f"same content as {dup.source} ({dup.video_id})")
                )
                continue
            if h in batch_hashes:
                first = batch_hashes[h]
                report.results.append(FileResult(src, "duplicate", None, f"same content as {first} (this batch)"))
                continue
            batch_hashes[h] = src
            meta = sidecar.lookup(src) if sidecar else None
            todo.append((src, h, same_src.key if same_src else None, meta))
        _run(todo, index, config, options, report, show_progress)
        index.flush()
    finally:
        index.close()
    report.wall_seconds = time.perf_counter() - t_start
    return report


def _run(todo, index: VideoIndex, config, options: IndexOptions, report: IndexReport, show_progress: bool) -> None:
    from tqdm.auto import tqdm

    if not todo:
        return
    cores = os.cpu_count() or 1
    workers = max(1, min(options.workers, len(todo)))
    threads = options.threads_per_worker or max(1, cores // workers)
    total_bytes = sum(os.path.getsize(s) for s, *_ in todo)
    overall = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="videos", position=0,
                   disable=not show_progress, dynamic_ncols=True, file=sys.stderr)
    overall.set_postfix_str(f"0/{len(todo)} done")
    done = 0
    committed = 0

    def commit(src: str, replace_key, video: NewVideo | None, code, reason, secs,
               fp: Fingerprint | None = None) -> None:
        nonlocal done, committed
        done += 1
        if video is None:
            index.catalog.record_failure(src, code or "error", reason or "", tenant=options.tenant)
            report.results.append(FileResult(src, "failed", reason=reason, code=code, seconds=secs))
        else:
            t0 = time.perf_counter()
            try:
                rec = index.add_video(video, replace_keys=[replace_key] if replace_key else [], save=False)
            except VidseekError as e:
                index.catalog.record_failure(src, e.code, str(e), tenant=options.tenant)
                report.results.append(FileResult(src, "failed", reason=str(e), code=e.code, seconds=secs))
            else:
                stages = dict(video.stats.get("stages", {}))
                stages["write"] = time.perf_counter() - t0
                if options.graph:  # the video is committed; a graph failure is recorded, not fatal
                    from engine.graph.store import GraphStore
                    from indexer.entities import update_video_graph

                    if fp is not None:  # update_reuse uses it instead of decoding the file again
                        GraphStore(index.catalog).put_fingerprint(rec.key, REUSE_ALGO, *fp)
                    g = update_video_graph(index.catalog, rec.key)
                    stages["graph"] = g.seconds
                    if g.status != "done":
                        log.warning("knowledge graph of %s not updated (%s); `vidseek graph build` retries",
                                    src, g.reason)
                report.results.append(FileResult(
                    src, "replaced" if replace_key else "indexed", rec.video_id, duration=video.duration or 0.0,
                    seconds=secs, stages=stages,
                ))
                committed += 1
                if committed % options.flush_every == 0:
                    index.flush()
        overall.update(os.path.getsize(src) if os.path.exists(src) else 0)
        overall.set_postfix_str(f"{done}/{len(todo)} done, {len(report.failed)} failed")

    if workers == 1:
        _init_threads(threads)
        bar = _video_bar(1, show_progress)
        for src, h, replace_key, meta in todo:
            video, code, reason, secs, fp = _analyse_safely(
                src, h, config, options, meta, lambda stage, frac, _s=src: _show(bar, _s, stage, frac)
            )
            commit(src, replace_key, video, code, reason, secs, fp)
        bar.close()
    else:
        ctx = mp.get_context("spawn")  # fork + torch/onnx thread pools deadlock
        manager = ctx.Manager()
        queue = manager.Queue()
        bars: dict[int, "tqdm"] = {}
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(threads, queue)) as pool:
            futs = {pool.submit(_work, (src, h, config, options, meta)): (src, rk) for src, h, rk, meta in todo}
            pending = set(futs)
            while pending:
                finished, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                while not queue.empty():
                    pid, src, stage, frac = queue.get_nowait()
                    if pid not in bars:
                        bars[pid] = _video_bar(len(bars) + 1, show_progress)
                    _show(bars[pid], src, stage, frac)
                for f in finished:
                    src, rk = futs[f]
                    try:
                        s, video, code, reason, secs, fp = f.result()
                    except Exception as e:  # a worker process died (e.g. a decoder crash)
                        video, code, reason, secs, fp = None, "worker_crash", f"{type(e).__name__}: {e}", 0.0, None
                    commit(src, rk, video, code, reason, secs, fp)
        for b in bars.values():
            b.close()
        manager.shutdown()
    overall.close()
