"""The live executor: poll a source, analyse it in windows, commit each window, finalise.

``LiveRun(stream, writer, ...)`` owns one stream's spool (``indexer.live.sources``) and
its video in the index. Each turn of ``run()`` polls the source, reports stalls, and
analyses a window when enough new media has arrived (``LiveOptions.min_window``
seconds, estimated from the spool's bytes per second so far), through
``indexer.live.window.analyse_window``; the final part of each window is committed
through ``indexer.ingest`` (the first window with ``commit``, which creates the video
with status ``live``; the next ones with ``commit_window``), so each window is one
catalog transaction and searchable as soon as it is committed.

The video's ``stats["live"]`` holds the run's state (epoch, committed time, the seam's
last word), written in the same transaction as each window's segments: a run killed
at any moment resumes from the last committed window, and nothing is committed twice.

The stream ends when the source says so (an HLS ``#EXT-X-ENDLIST``) or after
``end_after`` quiet seconds. Then the video is finalised: with ``finalise="reanalyse"``
(the default) the recording is analysed whole and replaces the windows in one
transaction, keeping the video id, with the knowledge graph and reused-footage
fingerprint of ``indexer.ingest.AFTER_COMMIT`` and covers: it is then what a
whole-file ingest of the recording gives. ``finalise="keep"`` keeps the windows'
segments and runs the graph and covers on them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from engine.catalog import NewVideo
from engine.config import IndexConfig
from engine.errors import InputError, NotFoundError, VidseekError
from engine.index import VideoIndex
from indexer.ingest import Decision, commit, commit_window, file_hash
from indexer.live.sources import LiveEvent, Spool, open_source, spool_dir
from indexer.live.window import SeamState, analyse_window, cleanup, cut_window
from indexer.mapper import Analysis, analyse_file
from indexer.options import IndexOptions
from indexer.stages.base import Stage

__all__ = ["LiveOptions", "LiveReport", "LiveRun", "run_live", "FINALISE_MODES", "OwnWriter"]

log = logging.getLogger("vidseek.live")

FINALISE_MODES = ("reanalyse", "keep")
MAX_WINDOW_FAILURES = 3  # a window that fails this often with no new data is skipped and reported


@dataclass(frozen=True)
class LiveOptions:
    """How a live stream is windowed. Documented defaults; see docs/live.md.

    ``min_window``: seconds of new media before a window is analysed; ``max_window``:
    the longest window (a backlog is worked off in windows this long); ``guard``: the
    last seconds of the data are never final (a packet may be half written);
    ``speech_guard``: words ending this close to the data's end wait for the next
    window; ``preroll``: seconds of audio heard before a window; ``poll``: seconds
    between polls; ``stall_after``: quiet seconds before a stall is reported;
    ``end_after``: quiet seconds after which the stream counts as ended (0: never;
    only the source's own end marker or a stop ends it); ``settle``: seconds a chunk's
    size must hold still before it is taken; ``finalise``: ``reanalyse`` or ``keep``;
    ``segment_max``: while live, a long shot is cut into segments of at most this (the
    index's own ``segment_max`` applies when it is shorter, and to the finalised
    video): a window holds its last segment back until the shot ends or the segment
    is full, so this bounds how long a moment inside a long shot waits. Measured
    (docs/live.md): 5 s took freshness p95 from 14.1 to 11.2 s but lost 12 words at
    the seams against 2, so the default stays at the index's 10 s."""

    min_window: float = 4.0
    max_window: float = 30.0
    guard: float = 0.5
    speech_guard: float = 1.0
    preroll: float = 3.0
    poll: float = 0.5
    stall_after: float = 10.0
    end_after: float = 60.0
    settle: float = 1.0
    finalise: str = "reanalyse"
    segment_max: float = 10.0
    covers: bool = True
    warm_up: bool = True  # load the models before the first window

    def __post_init__(self) -> None:
        for name in ("min_window", "max_window", "poll", "stall_after", "segment_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"live option {name}={v!r} must be a positive number of seconds")
        for name in ("guard", "speech_guard", "preroll", "end_after", "settle"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"live option {name}={v!r} must be zero or more seconds")
        if self.max_window < self.min_window or self.max_window < 5:
            raise InputError(f"max_window {self.max_window} must be at least 5 s and at least min_window"
                             f" ({self.min_window})")
        if self.finalise not in FINALISE_MODES:
            raise InputError(f"finalise {self.finalise!r} is not one of {', '.join(FINALISE_MODES)}")


@dataclass
class LiveReport:
    """What a run did: the video, its windows, the events met, how it ended."""

    stream: str
    video_id: str | None = None
    windows: int = 0
    committed: float = 0.0  # video seconds committed
    status: str = "running"  # running | finalised | stopped | failed
    events: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for e in self.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        return {"stream": self.stream, "video_id": self.video_id, "status": self.status, "windows": self.windows,
                "committed_seconds": round(self.committed, 3), "events": kinds, "warnings": self.warnings}


class OwnWriter:
    """A writer handle held by this process alone (the CLI), shaped like the service's
    ``api.jobs.SharedWriter``: ``locked()`` yields the ``VideoIndex``."""

    def __init__(self, index: VideoIndex) -> None:
        self.index = index

    @contextlib.contextmanager
    def locked(self) -> Iterator[VideoIndex]:
        yield self.index


EventFn = Callable[[LiveEvent], None]


class LiveRun:
    """One live stream into one index (see the module doc). ``writer``: an object with
    ``locked()`` yielding the writer ``VideoIndex`` (``OwnWriter`` or the service's
    ``SharedWriter``); ``index_dir``: where the spool lives (``DIR/live/``)."""

    def __init__(self, stream: str, writer, index_dir: str | Path, config: IndexConfig, options: IndexOptions,
                 live: LiveOptions | None = None, *, on_event: EventFn | None = None,
                 stop: threading.Event | None = None, extra_stages: Sequence[Stage] = ()) -> None:
        self.stream, self.writer, self.config, self.options = stream, writer, config, options
        self.live = live or LiveOptions()
        self.stop = stop or threading.Event()
        self.extra_stages = tuple(extra_stages)
        self.on_event = on_event
        self.source, ext = open_source(stream, settle=self.live.settle)
        self.spool = Spool(spool_dir(index_dir, stream), stream, ext)
        self.tmp = self.spool.folder / "window"
        self.report = LiveReport(stream)
        self.state: dict = {}
        self.key: int | None = None
        self._attempt_bytes = -1
        self._rate: float | None = None  # spool bytes per media second
        self._failures = 0
        self._epoch_done = False
        self._identify()

    # -- events ------------------------------------------------------------------------
    def emit(self, ev: LiveEvent) -> None:
        self.report.events.append(ev.as_dict())
        (log.warning if ev.kind in ("stalled", "restart", "truncated", "loop", "error", "skipped") else log.info)(
            "%s", ev.message)
        if self.on_event is not None:
            self.on_event(ev)

    # -- state -------------------------------------------------------------------------
    def _identify(self) -> None:
        """The video id of this stream (new, or the one its spool recorded); refuses a
        stream that was finalised already."""
        meta = self.spool.meta
        if meta.get("finalised"):
            raise InputError(f"{self.stream} was already indexed live and finalised as video {meta['video_id']}",
                             hint=f"delete it first (`vidseek delete {meta['video_id']}`) and remove"
                                  f" {self.spool.folder} to index the stream again")
        if meta.get("video_id") is None:
            from engine.catalog import make_video_id

            meta["content_hash"] = "live:" + hashlib.sha256(
                f"{self.stream}\0{meta['created_at']}".encode("utf-8", "surrogateescape")).hexdigest()
            meta["video_id"] = make_video_id(self.options.tenant, meta["content_hash"])
            self.spool.save()
        self.report.video_id = meta["video_id"]

    def _load(self) -> None:
        meta = self.spool.meta
        with self.writer.locked() as index:
            try:
                rec = index.catalog.get_video(meta["video_id"])
            except NotFoundError:
                rec = None
        if rec is not None:
            self.key = rec.key
            self.state = dict(rec.stats.get("live", {}))
            self.report.windows = int(self.state.get("windows", 0))
            self.report.committed = float(self.state.get("committed", 0.0))
            self.emit(LiveEvent("resumed", f"resuming {meta['video_id']} after {self.report.committed:.2f} s"
                                           f" ({self.report.windows} windows committed)",
                                data={"video_id": meta["video_id"], "committed": self.report.committed}))
        else:
            self.state = {"stream": self.stream, "kind": self.source.kind, "epoch": 0, "epoch_start": 0.0,
                          "local": 0.0, "committed": 0.0, "word_end": None, "last_word": "", "language": None,
                          "windows": 0, "started_at": meta["created_at"]}

    def _seam(self) -> SeamState:
        we = self.state.get("word_end")
        return SeamState(word_end=float("-inf") if we is None else float(we),
                         last_word=self.state.get("last_word", ""),
                         language=self.options.language or self.state.get("language"),
                         tail=tuple(tuple(w) for w in self.state.get("tail") or []))

    # -- the loop ----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the models the windows will run before the first data arrives, so the
        first window does not pay for them (measured: docs/live.md)."""
        import numpy as np

        from engine.models.registry import get_image_encoder, get_text_encoder

        o, c = self.options, self.config
        get_text_encoder(c.text_encoder).encode(["warm up"])
        blank = np.zeros((64, 64, 3), np.uint8)
        if o.visual:
            get_image_encoder(c.image_encoder, **c.image_options).encode_images([blank])
        if o.ocr:
            from indexer import ocr

            ocr.gate_features(blank)
            ocr.ocr_frame(blank)
        if o.speech:
            from indexer import speech

            speech.load_model(o.speech_model)

    def _poll_loop(self, halt: threading.Event, failure: list) -> None:
        """Copy what the source gives into the spool every ``poll`` seconds, in a thread
        of its own: a window's analysis may take longer than a sliding HLS playlist keeps
        its segments, and the copy must not wait for it."""
        last_missing = None
        try:
            while not halt.is_set():
                for ev in self.source.poll(self.spool):
                    if ev.kind == "missing" and ev.message == last_missing:
                        continue  # said once until something else happens
                    last_missing = ev.message if ev.kind == "missing" else None
                    self.emit(ev)
                halt.wait(self.live.poll)
        except BaseException as e:  # e.g. a playlist that is not one: the run fails with it
            failure.append(e)
            self.stop.set()

    def run(self) -> LiveReport:
        """Run until the stream ends (then finalise) or ``stop`` is set (resumable)."""
        self._load()
        halt, failure = threading.Event(), []
        poller = threading.Thread(target=self._poll_loop, args=(halt, failure), name="live-poll", daemon=True)
        poller.start()
        try:
            if self.live.warm_up:
                t0 = time.perf_counter()
                self.warm_up()
                self.emit(LiveEvent("ready", f"models loaded in {time.perf_counter() - t0:.1f} s"))
            last_growth, last_total, stalled = time.monotonic(), -1, False
            while not self.stop.is_set():
                now, total = time.monotonic(), self.spool.total_bytes
                if total == 0:
                    last_growth = now  # not on air yet: waiting is neither a stall nor an end
                elif total > last_total:
                    last_growth = now
                    if stalled:
                        self.emit(LiveEvent("resumed", f"{self.stream}: data flows again"))
                    stalled = False
                last_total = total
                quiet = now - last_growth
                if not stalled and quiet >= self.live.stall_after:
                    stalled = True
                    self.emit(LiveEvent("stalled", f"{self.stream}: no new data for {quiet:.0f} s"
                                        + (f"; the stream counts as ended after {self.live.end_after:.0f} s"
                                           if self.live.end_after else ""), data={"quiet": round(quiet, 1)}))
                ended = self.source.ended or (self.live.end_after > 0 and quiet >= self.live.end_after)
                if self._step(ended):
                    continue
                if ended and self._caught_up():
                    halt.set()
                    poller.join()
                    if self.spool.total_bytes != total:  # data came in at the last moment: not ended
                        halt = threading.Event()
                        poller = threading.Thread(target=self._poll_loop, args=(halt, failure), name="live-poll",
                                                  daemon=True)
                        poller.start()
                        continue
                    self.emit(LiveEvent("ended", f"{self.stream}: the stream ended"
                                        + (" (end of playlist)" if self.source.ended else
                                           f" (no data for {quiet:.0f} s)")))
                    self.finalise()
                    return self.report
                self.stop.wait(self.live.poll)
            if failure:
                raise failure[0]
            self.report.status = "stopped"
            return self.report
        except BaseException:
            self.report.status = "failed" if self.report.status == "running" else self.report.status
            raise
        finally:
            halt.set()
            poller.join()
            cleanup_dir(self.tmp)

    def _caught_up(self) -> bool:
        return self.state["epoch"] >= len(self.spool.epochs) - 1 and (
            self._epoch_done or self.spool.size(self.state["epoch"]) == 0)

    def _advance_epoch(self) -> None:
        self.state.update(epoch=self.state["epoch"] + 1, epoch_start=self.state["committed"], local=0.0)
        self._epoch_done, self._attempt_bytes, self._rate = False, -1, None

    def _step(self, ended: bool) -> bool:
        """Analyse one window if one is due; whether anything moved."""
        ep = self.state["epoch"]
        last = len(self.spool.epochs) - 1
        complete = ep < last or ended
        if self._epoch_done or self.spool.size(ep) == 0:
            if ep < last:
                self._advance_epoch()
                return True
            return False
        size = self.spool.size(ep)
        if not complete:
            need = 1 if self._rate is None else self._rate * self.live.min_window
            if size - max(self._attempt_bytes, 0) < need and self._attempt_bytes >= 0:
                return False
        clip = cut_window(self.spool.path(ep), float(self.state["local"]), self.live.max_window, self.tmp,
                          preroll=self.live.preroll)
        self._attempt_bytes = size
        if clip is None:
            if complete:
                self._epoch_done = True
                return True
            return False
        local_end = float(self.state["local"]) + clip.duration
        if local_end > 0:
            self._rate = size / local_end
        full = clip.duration >= self.live.max_window - 1.0  # cut by its length: the data goes on
        final = complete and not full
        offset = float(self.state["epoch_start"]) + float(self.state["local"])
        try:
            window_options = dataclasses.replace(
                self.options, segment_max=min(self.options.segment_max, self.live.segment_max))
            res = analyse_window(clip, offset, self._seam(), self.config, window_options, final=final,
                                 guard=self.live.guard, speech_guard=self.live.speech_guard, full=full,
                                 extra=self.extra_stages)
        except (VidseekError, Exception) as e:  # a decoder or model failure on this stretch
            self._failures += 1
            self.emit(LiveEvent("error", f"window at {offset:.2f} s failed ({self._failures}/"
                                         f"{MAX_WINDOW_FAILURES}): {type(e).__name__}: {e}"))
            if self._failures >= MAX_WINDOW_FAILURES and (complete or clip.duration >= self.live.max_window - 1.0):
                self.emit(LiveEvent("skipped", f"skipped {clip.duration:.2f} s at {offset:.2f} s that fails to"
                                               " analyse", data={"start": offset, "seconds": clip.duration}))
                self.state["local"] = local_end
                self.state["epoch_start"] = float(self.state["epoch_start"])
                self.state["committed"] = offset + clip.duration
                self._failures = 0
                return True
            return False
        finally:
            cleanup(clip)
        self._failures = 0
        if res is None:
            if final:
                self._epoch_done = True
                return True
            return False
        self._commit(res, written_to=offset + clip.duration)
        if final:
            self._epoch_done = True
        return True

    # -- commits ---------------------------------------------------------------------------
    def _live_stats(self, res) -> dict:
        st = self.state
        st.update(local=res.end - float(st["epoch_start"]), committed=res.end,
                  word_end=None if math.isinf(res.word_end) else res.word_end, last_word=res.last_word,
                  tail=[list(w) for w in res.tail],
                  language=res.language, windows=int(st.get("windows", 0)) + 1, updated_at=time.time())
        return dict(st)

    def _commit(self, res, *, written_to: float) -> None:
        t0 = time.time()
        before = float(self.state["committed"])
        state = self._live_stats(res)
        with self.writer.locked() as index:
            if self.key is None:
                video = dataclasses.replace(
                    res.part, source=str(self.spool.path(0)), content_hash=self.spool.meta["content_hash"],
                    tenant=self.options.tenant, video_id=self.spool.meta["video_id"],
                    title=res.part.title or Path(self.stream).name, language=res.language,
                    stats={**res.part.stats, "live": state, "stages": res.stages})
                r = commit(index, Decision(video.source, "new", video.content_hash), Analysis(video.source, video),
                           self.options, after=(), reraise=True)
                self.key = index.catalog.get_video(r.video_id).key
            else:
                rec = index.catalog.get_video_by_key(self.key)
                stats = dict(rec.stats)
                stats["live"] = state
                stats["has_speech"] = bool(stats.get("has_speech")) or res.part.stats.get("has_speech", False)
                stats["has_text"] = bool(stats.get("has_text")) or res.part.stats.get("has_text", False)
                stats["cuts"] = list(stats.get("cuts", [])) + list(res.part.stats.get("cuts", []))
                stages = dict(stats.get("stages", {}))
                for k, v in res.stages.items():
                    stages[k] = round(stages.get(k, 0.0) + v, 4)
                stats["stages"] = stages
                commit_window(index, rec.source, self.key, res.part, stats, self.options, reraise=True)
        self.report.windows = state["windows"]
        self.report.committed = res.end
        self.emit(LiveEvent(
            "window", f"window {state['windows']}: {before:.2f}-{res.end:.2f} s committed"
                      f" ({len(res.part.segments)} segments, {res.words} words), data to {written_to:.2f} s",
            at=t0, data={"window": state["windows"], "start": round(before, 3), "end": round(res.end, 3),
                         "data_end": round(written_to, 3), "segments": len(res.part.segments), "words": res.words,
                         "committed_at": round(time.time(), 3)}))

    # -- the end -----------------------------------------------------------------------
    def _recording(self) -> Path:
        """The whole recording as one file (the epochs joined when there are several)."""
        paths = [self.spool.path(i) for i in range(len(self.spool.epochs)) if self.spool.size(i) > 0]
        if len(paths) <= 1:
            return paths[0] if paths else self.spool.path(0)
        out = self.spool.folder / f"recording.full{self.spool.meta['ext']}"
        lst = self.spool.folder / "epochs.txt"
        lst.write_text("".join(f"file '{p.name}'\n" for p in paths))
        proc = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "concat", "-safe",
                               "0", "-i", str(lst), "-c", "copy", str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise VidseekError(f"could not join the epochs of {self.stream}: {proc.stderr.strip()[-300:]}")
        return out

    def finalise(self) -> None:
        """Make the live video whole (see the module doc); the spool is marked finalised."""
        if self.key is None:
            self.emit(LiveEvent("finalised", f"{self.stream}: the stream ended with nothing indexed"))
            self.report.status = "finalised"
            self.spool.meta["finalised"] = True
            self.spool.save()
            return
        recording = self._recording()
        state = {**self.state, "finalised": True, "finalised_at": time.time(), "recording": str(recording),
                 "windows_committed": self.report.committed}
        mode = self.live.finalise
        if mode == "reanalyse":
            self.emit(LiveEvent("finalising", f"analysing the whole recording {recording.name}"))
            h = file_hash(str(recording))
            an = analyse_file(str(recording), h, self.config, self.options,
                              stages=None if not self.extra_stages else _with_extra(self.options, self.extra_stages))
            if an.video is None:
                self.report.warnings.append(f"the whole recording did not analyse ({an.reason}); the windows stay")
                mode = "keep"
            else:
                an.video.video_id = self.spool.meta["video_id"]
                an.video.stats["live"] = state
                with self.writer.locked() as index:
                    res = commit(index, Decision(str(recording), "changed", h, self.spool.meta["video_id"],
                                                 replace_key=self.key), an, self.options)
                    if res.status == "failed":
                        self.report.warnings.append(f"the whole recording did not commit ({res.reason});"
                                                    " the windows stay")
                        mode = "keep"
                    else:
                        self.key = index.catalog.get_video(res.video_id).key
                        self.report.warnings += res.warnings
        if mode == "keep":
            with self.writer.locked() as index:
                rec = index.catalog.get_video_by_key(self.key)
                part = NewVideo(source=rec.source, content_hash=rec.content_hash, duration=rec.duration)
                commit_window(index, rec.source, self.key, part, {**rec.stats, "live": state}, self.options,
                              status="indexed", reraise=True)
                if self.options.graph:
                    from indexer.ingest import AFTER_COMMIT

                    rec = index.catalog.get_video_by_key(self.key)
                    for name, enabled, step in AFTER_COMMIT:
                        if enabled(self.options):
                            try:
                                _, warning = step(index, rec, Analysis(rec.source, None))
                            except Exception as e:  # an optional step never undoes the commit
                                warning = f"{name} failed: {type(e).__name__}: {e}"
                            if warning:
                                self.report.warnings.append(warning)
        if self.live.covers:
            self._covers()
        self.spool.meta["finalised"] = True
        self.spool.save()
        self.report.status = "finalised"
        self.emit(LiveEvent("finalised", f"{self.spool.meta['video_id']} finalised ({mode}):"
                                         f" {recording.name}", data={"mode": mode, "recording": str(recording),
                                                                     "warnings": list(self.report.warnings)}))

    def _covers(self) -> None:
        try:
            from engine.covers import CoverStore
            from indexer.covers.candidates import compute_covers
            from indexer.covers.service import store_cover_set

            with self.writer.locked() as index:
                rec = index.catalog.get_video_by_key(self.key)
                cs = compute_covers(index.catalog, rec, index.config)
                store_cover_set(CoverStore(index.catalog), rec.key, cs)
        except Exception as e:  # covers are optional: `vidseek covers` retries
            log.exception("covers of %s failed", self.stream)
            self.report.warnings.append(f"covers not computed ({type(e).__name__}: {e}); `vidseek covers` retries")


def _with_extra(options: IndexOptions, extra: Sequence[Stage]) -> list[Stage]:
    from indexer.stages import build_stages

    return build_stages(options, extra)


def cleanup_dir(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.iterdir():
            try:
                p.unlink()
            except OSError:
                pass


def run_live(stream: str, index_dir: str | Path, *, options: IndexOptions | None = None,
             live: LiveOptions | None = None, config: IndexConfig | None = None, on_event: EventFn | None = None,
             stop: threading.Event | None = None, extra_stages: Sequence[Stage] = ()) -> LiveReport:
    """``vidseek live``: open the index's writer (created if absent) and run the stream
    until it ends (finalised) or ``stop`` is set (resumable)."""
    from indexer.ingest import open_writer

    index = open_writer(index_dir, config)
    try:
        run = LiveRun(stream, OwnWriter(index), index_dir, index.config, options or IndexOptions(), live,
                      on_event=on_event, stop=stop, extra_stages=extra_stages)
        return run.run()
    finally:
        index.close()
