"""What every ingest path shares: list the files, ``decide`` what each one needs, and
``commit`` an analysed video with one error policy.

The CLI (``indexer.pipeline.index_paths``), the service's job queue (``api.jobs``) and
any later executor (distributed, live) call these, so a file is judged new, changed,
unchanged or a duplicate the same way everywhere, and a commit always does the same
things in the same order:

1. the whole video in one catalog transaction (``VideoIndex.add_video``), dropping the
   version it replaces; a failure here is recorded in the catalog's failure list and
   the video is reported failed;
2. the optional steps after it (``AFTER_COMMIT``: the knowledge graph, the moment
   thumbnails), each of which
   may fail: the failure is reported on that video as a warning, and never stops a
   batch or undoes the commit (``vidseek graph build`` retries the graph).

Progress leaves the library as ``IngestEvent`` values passed to a callback; drawing
them is the caller's business (the CLI's bars are in ``api.progress``).
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from engine.catalog import Catalog, NewVideo, VideoRecord
from engine.config import IndexConfig
from engine.errors import InputError, NotFoundError, VidseekError
from engine.index import VideoIndex
from indexer.mapper import Analysis
from indexer.metadata import VideoMetadata
from indexer.options import IndexOptions

__all__ = [
    "MEDIA_EXTENSIONS", "FileResult", "IndexReport", "IngestEvent", "EventFn", "Decision", "discover",
    "file_hash", "NotAFileError", "decide", "commit", "commit_window", "record_failure", "open_writer",
    "AFTER_COMMIT",
]

log = logging.getLogger("vidseek.indexer")

# Folder walks take files with these extensions (explicit file arguments are always
# probed, whatever their name). Content is still checked by probing.
MEDIA_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts",
    ".ogg", ".ogv", ".flv", ".wmv", ".asf", ".3gp", ".3g2", ".mxf", ".vob", ".dv", ".f4v", ".h264", ".264",
    ".hevc", ".y4m", ".gif",
}


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
    warnings: list[str] = field(default_factory=list)  # optional steps that failed after the commit
    # indexed, but part of its picture does not decode (indexer.media.Damage.as_dict():
    # reason, decodable_duration, probed_duration, ...); the catalog's status is 'damaged'
    damage: dict | None = None


@dataclass
class IndexReport:
    results: list[FileResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    # sidecar lines that matched no file of this run ("FILE:LINE: source")
    unmatched_metadata: list[str] = field(default_factory=list)
    # where the models run, as engine.accel.plan says before the first video
    devices: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def damaged(self) -> list[FileResult]:
        """Files indexed (what decodes of them) whose picture is partly undecodable."""
        return [r for r in self.results if r.damage is not None and r.status in ("indexed", "replaced")]

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
            "damaged": [{"source": r.source, "video_id": r.video_id, **r.damage} for r in self.damaged],
            "warnings": [{"source": r.source, "warning": w} for r in self.results for w in r.warnings],
            "unmatched_metadata": list(self.unmatched_metadata),
            "devices": dict(self.devices),
        }


@dataclass(frozen=True)
class IngestEvent:
    """One progress event of an ingest run.

    ``kind``: ``start`` (``total`` files to analyse, ``total_bytes``, ``total_seconds``
    of media by the container headers), ``stage`` (a video entered ``stage``;
    ``fraction`` of its analysis done; ``worker`` names the process), ``file`` (a file
    is finished: ``result``; ``done``/``failed`` so far; ``bytes`` and ``seconds`` of
    it), ``end``."""

    kind: str
    source: str | None = None
    stage: str | None = None
    fraction: float = 0.0
    worker: int = 0
    result: FileResult | None = None
    total: int = 0
    total_bytes: int = 0
    done: int = 0
    failed: int = 0
    bytes: int = 0
    total_seconds: float = 0.0
    seconds: float = 0.0


EventFn = Callable[[IngestEvent], None]


# -- listing and deciding -----------------------------------------------------------------
class NotAFileError(InputError):
    """A path names something that is not a regular file (a FIFO, a device, a socket, a
    folder where a file was expected): reading it could block forever or never end."""

    code = "not_a_file"


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def _not_a_file(path: str, mode: int) -> FileResult:
    return FileResult(path, "failed", code=NotAFileError.code,
                      reason=f"{path} is a {_kind(mode)}, not a regular file; only regular files are indexed"
                             " (skipped)")


def _stat_failure(path: str, e: OSError) -> FileResult:
    """The report line of a path that cannot be stat'ed, saying why in words."""
    if e.errno == errno.ELOOP:
        return FileResult(path, "failed", code="symlink_loop",
                          reason=f"{path} is a symbolic link loop (a link that leads back to itself);"
                                 " fix or remove the link")
    if e.errno == errno.ENOENT:
        if os.path.islink(path):
            return FileResult(path, "failed", code=NotFoundError.code,
                              reason=f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist")
        return FileResult(path, "failed", code=NotFoundError.code, reason=f"{path} does not exist")
    return FileResult(path, "failed", code="unreadable", reason=f"{path} cannot be read: {e.strerror or e}")


def _stat(path: str, failures: list[FileResult]) -> os.stat_result | None:
    """``os.stat(path)``, or None with the reason appended to ``failures``."""
    try:
        return os.stat(path)
    except OSError as e:
        failures.append(_stat_failure(path, e))
        return None


def _walk(folder: str, sources: list[str], failures: list[FileResult]) -> None:
    """Files with a media extension under ``folder`` (sorted, hidden names skipped);
    entries that are not regular files, or cannot be stat'ed, go to ``failures``."""
    def walk_error(e: OSError) -> None:
        failures.append(_stat_failure(e.filename or folder, e))

    for root, dirs, files in os.walk(folder, onerror=walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in MEDIA_EXTENSIONS:
                continue
            path = os.path.join(root, f)
            st = _stat(path, failures)
            if st is None:
                continue
            if stat.S_ISREG(st.st_mode):
                sources.append(path)
            elif not stat.S_ISDIR(st.st_mode):  # a FIFO or device named like a video
                failures.append(_not_a_file(path, st.st_mode))


def discover(paths: Sequence[str]) -> tuple[list[str], list[FileResult]]:
    """Expand folders (recursively, media extensions only, sorted); keep files as given.

    Only regular files are returned: a FIFO, device or socket (named, or met in a
    folder) would block or never end when read, so it is reported and skipped. Returns
    (sources, failures): paths that do not exist (a dangling link says so), symlink
    loops, unreadable paths, non-regular files, and a folder named like a video file
    (``x.mp4/``) that holds no video files, and files whose name is not valid UTF-8
    (``bad_name``, the name shown with ``\\xNN`` escapes: the catalog stores text)."""
    sources: list[str] = []
    failures: list[FileResult] = []
    for p in paths:
        st = _stat(p, failures)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            before = len(sources)
            _walk(p, sources, failures)
            if len(sources) == before and os.path.splitext(p.rstrip(os.sep))[1].lower() in MEDIA_EXTENSIONS:
                failures.append(FileResult(p, "failed", code=NotAFileError.code,
                                           reason=f"{p} is a directory, not a video file, and holds no video files"))
        elif stat.S_ISREG(st.st_mode):
            sources.append(p)
        else:
            failures.append(_not_a_file(p, st.st_mode))
    seen: set[str] = set()
    uniq = [s for s in sources if not (s in seen or seen.add(s))]
    for s in [s for s in uniq if not _utf8(s)]:
        uniq.remove(s)
        name = _utf8_name(s)
        failures.append(FileResult(name, "failed", code="bad_name",
                                   reason=f"{name}: the file name is not valid UTF-8 (shown with \\x escapes);"
                                          " rename the file: the index stores names as UTF-8 text"))
    for f in failures:  # a missing or special path with such a name: reported escaped
        if not _utf8(f.source) or not _utf8(f.reason or ""):
            f.source, f.reason = _utf8_name(f.source), _utf8_name(f.reason or "")
    reported: set[str] = set()
    failures = [f for f in failures if not (f.source in reported or reported.add(f.source))]
    return uniq, failures


def _utf8(name: str) -> bool:
    """Whether ``name`` is valid UTF-8 text (a file name of other bytes comes from the OS
    with surrogate escapes, which the catalog cannot store)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _utf8_name(name: str) -> str:
    """``name`` with the bytes that are not UTF-8 written as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_hash(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes, streamed.

    Reads only a regular file (``NotAFileError`` otherwise: the open does not block on a
    FIFO) and at most the size it had when opened, so a device or a file that keeps
    growing cannot make it run forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFileError(f"{path} is a {_kind(st.st_mode)}, not a regular file",
                                hint="index regular video files only")
        h = hashlib.sha256()
        left = st.st_size
        while left > 0:
            block = os.read(fd, min(chunk, left))
            if not block:  # the file shrank meanwhile: hash what is there
                break
            h.update(block)
            left -= len(block)
        return h.hexdigest()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Decision:
    """What a file needs. ``action``: ``new`` or ``changed`` (analyse it; a changed
    file replaces ``replace_key`` in the same transaction), ``unchanged`` (the same
    source with the same bytes is indexed as ``video_id``) or ``duplicate`` (the same
    bytes are indexed from another source, ``video_id``, or come earlier in this batch)."""

    source: str
    action: str
    content_hash: str
    video_id: str | None = None
    replace_key: int | None = None
    reason: str | None = None

    @property
    def needs_analysis(self) -> bool:
        return self.action in ("new", "changed")

    def skipped(self) -> FileResult:
        """The report line of a file that needs no analysis."""
        status = "skipped" if self.action == "unchanged" else "duplicate"
        return FileResult(self.source, status, self.video_id, self.reason)


def decide(catalog: Catalog, source: str, content_hash: str, *, tenant: str,
           batch: dict[str, str] | None = None, meta: VideoMetadata | None = None) -> Decision:
    """Judge one file against the catalog (and against earlier files of ``batch``, a
    dict hash -> source this call fills in). ``meta``: the metadata this run gives the
    file; an unchanged file whose stored metadata differs is ``changed`` (re-analysed
    with it: the metadata is in every segment's vectors and BM25 text), while None
    keeps what is stored."""
    same = catalog.find_by_source(source, tenant=tenant)
    if same is not None and same.content_hash == content_hash:
        if meta is not None and meta.differs_from(same):
            if batch is not None:
                batch[content_hash] = source
            return Decision(source, "changed", content_hash, same.video_id, replace_key=same.key,
                            reason="metadata changed")
        return Decision(source, "unchanged", content_hash, same.video_id, reason="unchanged since last index")
    dup = catalog.find_by_hash(content_hash, tenant=tenant)
    if dup is not None and (same is None or dup.key != same.key):
        return Decision(source, "duplicate", content_hash, dup.video_id,
                        reason=f"same content as {dup.source} ({dup.video_id})")
    if batch is not None:
        first = batch.get(content_hash)
        if first is not None:
            return Decision(source, "duplicate", content_hash, reason=f"same content as {first} (this batch)")
        batch[content_hash] = source
    if same is None:
        return Decision(source, "new", content_hash)
    return Decision(source, "changed", content_hash, same.video_id, replace_key=same.key)


# -- committing ------------------------------------------------------------------------------
def record_failure(index: VideoIndex, source: str, code: str | None, reason: str | None, *, tenant: str
                   ) -> FileResult:
    """Put a failed file on the catalog's failure list; returns its report line."""
    index.catalog.record_failure(source, code or "error", reason or "", tenant=tenant)
    return FileResult(source, "failed", reason=reason, code=code)


def _graph(index: VideoIndex, rec: VideoRecord, analysis: Analysis) -> tuple[float, str | None]:
    """Entities, edges and reused footage of the new video; returns (seconds, warning)."""
    from engine.graph.store import GraphStore
    from indexer.entities import update_video_graph
    from indexer.reuse import ALGO

    if analysis.fingerprint is not None:  # update_reuse uses it instead of decoding the file again
        GraphStore(index.catalog).put_fingerprint(rec.key, ALGO, *analysis.fingerprint)
    g = update_video_graph(index.catalog, rec.key)
    if g.status != "done":
        return g.seconds, f"knowledge graph not updated ({g.reason}); `vidseek graph build` retries"
    return g.seconds, None


def _thumbnails(index: VideoIndex, rec: VideoRecord, analysis: Analysis) -> tuple[float, str | None]:
    """Write the segments' moment thumbnails (made by the thumbnails stage) beside the
    catalog, keyed by the committed segment ids; a replaced version's go first."""
    from indexer.thumbs import ThumbStore

    t0 = time.perf_counter()
    store = ThumbStore(index.path)
    store.remove(rec.video_id)
    ids = [s.id for s in index.catalog.segments_of(rec.key)]
    pairs = [(sid, seg.thumbnail) for sid, seg in zip(ids, analysis.video.segments) if seg.thumbnail]
    if pairs:
        store.put_all(rec.video_id, pairs)
    return time.perf_counter() - t0, None


# Optional steps after a commit: (name, turned on by the options?, step). A step returns
# (seconds, warning or None); an exception is a warning too (a missing thumbnail is made
# from the media when the API is asked for it). Covers computed at ingest would be one
# more line here.
AFTER_COMMIT: tuple[tuple[str, Callable[[IndexOptions], bool], Callable], ...] = (
    ("graph", lambda o: o.graph, _graph),
    ("thumbnail_files", lambda o: True, _thumbnails),
)


def commit(index: VideoIndex, decision: Decision, analysis: Analysis, options: IndexOptions, *,
           save: bool = True, reraise: bool = False, after: Sequence = AFTER_COMMIT) -> FileResult:
    """Commit one analysed file (or record its failure) and run the optional steps after
    it. Never raises for the file's own problems (the returned line says what happened),
    except that ``reraise`` re-raises a failed commit after recording it (a service job
    fails with that error). ``after``: the optional steps (default ``AFTER_COMMIT``)."""
    if analysis.video is None:
        res = record_failure(index, decision.source, analysis.code, analysis.reason, tenant=options.tenant)
        res.seconds = analysis.seconds
        return res
    t0 = time.perf_counter()
    replace = [decision.replace_key] if decision.replace_key is not None else []
    try:
        rec = index.add_video(analysis.video, replace_keys=replace, save=save)
    except VidseekError as e:
        res = record_failure(index, decision.source, e.code, str(e), tenant=options.tenant)
        res.seconds = analysis.seconds
        if reraise:
            raise
        return res
    stages = dict(analysis.video.stats.get("stages", {}))
    stages["write"] = time.perf_counter() - t0
    warnings: list[str] = [f"{runtime} ran on the CPU: {why}"
                           for runtime, why in analysis.video.stats.get("cpu_fallback", {}).items()]
    for name, enabled, step in after:
        if not enabled(options):
            continue
        try:
            secs, warning = step(index, rec, analysis)
            stages[name] = secs
        except Exception as e:  # the video is committed: an optional step never undoes that
            log.exception("%s after committing %s failed", name, decision.source)
            warning = f"{name} failed: {type(e).__name__}: {e}"
        if warning:
            log.warning("%s: %s", decision.source, warning)
            warnings.append(warning)
    return FileResult(decision.source, "replaced" if replace else "indexed", rec.video_id,
                      duration=analysis.video.duration or 0.0, seconds=analysis.seconds, stages=stages,
                      warnings=warnings, damage=analysis.video.stats.get("damage"))


def commit_window(index: VideoIndex, source: str, key: int, part: NewVideo, stats: dict, options: IndexOptions, *,
                  status: str = "live", reraise: bool = False) -> FileResult:
    """Commit one more window of a live video (``indexer.live``): ``part``'s segments,
    shots and timeline appended to video ``key`` in one catalog transaction with its new
    ``stats`` and ``status`` (``VideoIndex.append_segments``). The error policy of
    ``commit``: a failed commit is recorded on the failure list and reported (or
    re-raised with ``reraise``); the windows before it stay committed."""
    t0 = time.perf_counter()
    try:
        rec = index.append_segments(key, part, stats=stats, status=status)
    except VidseekError as e:
        res = record_failure(index, source, e.code, str(e), tenant=options.tenant)
        if reraise:
            raise
        return res
    return FileResult(source, "indexed", rec.video_id, duration=rec.duration or 0.0,
                      stages={"write": time.perf_counter() - t0})


# -- the writer handle -------------------------------------------------------------------
def open_writer(index_dir: str | Path, config: IndexConfig | None = None) -> VideoIndex:
    """The index's writer handle, creating the index with ``config`` (default settings
    when None) if it does not exist. An existing index keeps the settings it was built
    with: a ``config`` that differs from them (encoders, shards, any setting) is refused
    (InputError) rather than silently ignored. Raises IndexLockedError if another process writes."""
    from engine.models.registry import get_image_encoder, get_text_encoder

    existing = VideoIndex.read_config(index_dir)
    if existing is not None:
        if config is not None:
            have, asked = existing.as_dict(), config.as_dict()
            diffs = [f"{k} {have.get(k)!r} (asked for {asked.get(k)!r})"
                     for k in sorted(set(have) | set(asked)) if have.get(k) != asked.get(k)]
            if diffs:
                raise InputError(
                    f"index {index_dir} keeps the settings it was built with: " + ", ".join(diffs),
                    hint="leave out --text-encoder/--image-encoder/--config for an existing index,"
                         " or index into a new folder",
                )
        config = existing
    config = config or IndexConfig()
    encoders = {
        "text": get_text_encoder(config.text_encoder).info,
        "image": get_image_encoder(config.image_encoder, **config.image_options).info,
    }
    return VideoIndex.open(index_dir, writer=True, config=config, encoders=encoders)
