"""Moment export: one time range of a video as a playable MP4 (H.264/AAC), frame-accurate.

Two ways to cut
    **Stream copy** (no decoding, about as fast as the disk): used when the range
    starts on a keyframe and ends on a keyframe (or at the end of the video), the
    codecs are already MP4's (H.264 video, AAC audio or none), the container is one
    whose packets PyAV can remux into MP4 unchanged (mp4/mov, Matroska), and the video
    carries no rotation metadata. The copy is a remux with PyAV that keeps the packets
    whose *presentation* time lies in the range. The ``ffmpeg`` command line is not
    used here on purpose: its stream-copy ``-t`` cuts by *decode* time, so with
    B-frames it keeps the next GOP's first frames (measured on a 25 fps clip with a
    keyframe each second: a 2 s copy had 52 frames, two of them undecodable).

    **Re-encode** everywhere else: ``ffmpeg -ss START -i SRC -t DURATION`` with
    libx264 and AAC. Input seeking with a re-encode is frame-accurate in FFmpeg (it
    decodes from the keyframe before START and drops the frames before it).

Frame accuracy
    The requested ``[start, end)`` is snapped to the nearest frame boundaries of the
    source (frame presentation times read from the packets near each end, without
    decoding), so the clip holds exactly the frames whose time lies in the snapped
    range: its first frame is the frame on screen at ``start`` (up to half a frame),
    and its duration is ``end - start`` up to one frame. :class:`ExportPlan` reports
    the snapped range. Times are seconds from the start of the file as a player
    shows it, as everywhere in :mod:`indexer.media`.

Limits
    :class:`ExportLimits` caps the clip's duration (checked before any work) and its
    size (checked while FFmpeg writes, from its progress reports, and on the final
    file); going over raises :class:`ExportLimitError` (code ``too_large``).

Streaming
    :func:`export_to_temp` writes the clip to a temporary file and
    :func:`iter_file` streams it in chunks, deleting it at the end. A temporary file
    rather than fragmented MP4 piped from FFmpeg's stdout, because (1) every failure,
    the size limit included, is known before the first byte is sent, so an HTTP
    client gets a JSON error instead of a truncated 200; (2) a regular MP4 with its
    index in front (``+faststart``) states its duration and seeks in every player,
    while a fragmented one often shows no duration and cannot seek until it is
    complete; (3) the length is known, so ``Content-Length`` is sent. The cost is
    the time to first byte (the whole cut is made first) and disk space up to the
    size limit; memory stays at one chunk either way.

Progress
    ``progress(stage, fraction)`` is called as the work goes (``ffmpeg -progress
    pipe:1`` for a re-encode, packet times for a copy), with fraction in [0, 1].
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import av
import av.error

from engine.errors import InputError, MediaError, MissingDependencyError, NotFoundError
from indexer import media

__all__ = [
    "COPY_MODES",
    "CopyMode",
    "ProgressFn",
    "ExportLimits",
    "ExportLimitError",
    "ExportPlan",
    "ExportResult",
    "ffmpeg_binary",
    "keyframe_times",
    "next_frame_time",
    "plan_export",
    "export_clip",
    "export_to_temp",
    "iter_file",
    "run_ffmpeg",
    "FFMPEG_X264",
]

log = logging.getLogger(__name__)

CopyMode = Literal["auto", "never", "always"]
COPY_MODES: tuple[str, ...] = ("auto", "never", "always")
ProgressFn = Callable[[str, float], None]

# Containers whose H.264/AAC packets PyAV remuxes into MP4 as they are (MPEG-TS and
# raw streams carry Annex B / ADTS that would need bitstream filters).
_COPY_CONTAINERS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"})
# Two times closer than this are the same instant (rational timestamps as floats).
_EPS = 1e-3
# The x264/AAC settings of every re-encode: "veryfast" is about 3x faster than
# "medium" on 2 cores at a similar quality for short clips; CRF 20 is visually clean.
FFMPEG_X264: tuple[str, ...] = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")
_AAC: tuple[str, ...] = ("-c:a", "aac", "-b:a", "160k")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportLimits:
    """The largest clip an export may make: ``max_duration_s`` seconds and ``max_bytes``."""

    max_duration_s: float = 600.0
    max_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_duration_s) and self.max_duration_s > 0):
            raise InputError(f"max_duration_s {self.max_duration_s!r} must be a positive number of seconds")
        if self.max_bytes < 1:
            raise InputError(f"max_bytes {self.max_bytes!r} must be a positive number of bytes")


class ExportLimitError(InputError):
    """A clip over the duration or size limit (HTTP 413)."""

    code = "too_large"


@dataclass(frozen=True)
class ExportPlan:
    """How one range will be cut. ``start``/``end``: the requested range snapped to the
    source's frame boundaries (what the clip holds). ``mode``: ``copy`` or
    ``reencode``; ``reason`` says why."""

    source: str
    requested_start: float
    requested_end: float
    start: float
    end: float
    mode: Literal["copy", "reencode"]
    reason: str
    has_audio: bool
    fps: float | None
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ExportResult:
    """A written clip: its path, size, the plan it followed and its probed duration."""

    path: str
    size_bytes: int
    duration: float
    plan: ExportPlan

    def as_dict(self) -> dict:
        d = asdict(self)
        d["plan"]["duration"] = round(self.plan.duration, 6)
        return d


# ---------------------------------------------------------------------------
# FFmpeg


def ffmpeg_binary() -> str:
    """The ``ffmpeg`` command on PATH, or MissingDependencyError saying how to get it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MissingDependencyError(
            "ffmpeg", "clip export and highlight reels",
            hint="install it: scripts/system-deps.sh (apt-get install ffmpeg)",
        )
    return exe


def run_ffmpeg(
    args: Sequence[str],
    *,
    out: Path,
    expected_duration: float,
    max_bytes: int,
    progress: ProgressFn | None = None,
    stage: str = "export",
    what: str = "the clip",
) -> None:
    """Run ``ffmpeg ARGS... OUT`` with ``-progress pipe:1``; report progress; enforce the size.

    FFmpeg writes ``key=value`` lines every half second; ``out_time_us`` over the
    expected duration is the fraction done and ``total_size`` the bytes written so
    far, so an export over ``max_bytes`` is stopped as soon as it gets there rather
    than after the whole file is written. On failure the partial output is removed
    and MediaError carries FFmpeg's last error lines.
    """
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args,
           "-progress", "pipe:1", "-stats_period", "0.25", "-nostats", str(out)]
    log.debug("running %s", " ".join(cmd))
    # stderr goes to a file: a pipe nobody reads while stdout is read could fill and
    # block FFmpeg.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        too_large = False
        try:
            for line in proc.stdout or ():
                key, _, value = line.strip().partition("=")
                if key == "total_size" and value.isdigit() and int(value) > max_bytes:
                    too_large = True
                    proc.kill()
                    break
                if key in ("out_time_us", "out_time_ms") and value.lstrip("-").isdigit() and progress:
                    # out_time_ms is in microseconds too (an old FFmpeg misnomer).
                    done = max(0, int(value)) / 1e6
                    progress(stage, min(1.0, done / expected_duration) if expected_duration > 0 else 0.0)
            rc = proc.wait()
        except BaseException:
            # An abandoned job (or Ctrl-C) must not leave FFmpeg running.
            proc.kill()
            proc.wait()
            out.unlink(missing_ok=True)
            raise
        if too_large:
            out.unlink(missing_ok=True)
            raise ExportLimitError(
                f"{what} grew past the size limit of {max_bytes} bytes",
                hint="export a shorter range or raise the size limit (--max-bytes)",
            )
        if rc != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            out.unlink(missing_ok=True)
            raise MediaError(
                f"ffmpeg failed (exit {rc}) making {what}: {' | '.join(tail) or 'no message'}",
                hint="check that the source plays (ffprobe it) and that the output folder is writable",
            )
    if progress:
        progress(stage, 1.0)


# ---------------------------------------------------------------------------
# Frame times and keyframes from packets (no decoding)


@dataclass(frozen=True)
class _Grid:
    """Frame presentation times and keyframe times near one instant, ascending."""

    frames: list[float]
    keyframes: list[float]


def _packet_times(path: str, lo: float, hi: float) -> _Grid:
    """Demux the video packets that present in about ``[lo, hi]`` (seconds)."""
    with av.open(path) as c:
        v = c.streams.video[0]
        tb = v.time_base
        origin = c.start_time / av.time_base if c.start_time is not None else 0.0
        if not tb:
            return _Grid([], [])

        def scan(seek_to: float | None) -> tuple[list[float], list[float], float | None]:
            if seek_to is not None:
                c.seek(int((seek_to + origin) / tb), stream=v, backward=True)
            frames: list[float] = []
            keys: list[float] = []
            first: float | None = None
            for p in c.demux(v):
                if p.size == 0 or p.pts is None:
                    continue
                t = float(p.pts * tb) - origin
                first = t if first is None else first
                frames.append(t)
                if p.is_keyframe:
                    keys.append(t)
                dts = float(p.dts * tb) - origin if p.dts is not None else t
                # Packets come in decode order; past hi by the decode time, nothing
                # that presents in range can follow (reordering is a few frames).
                if dts > hi + 1.0:
                    break
            return frames, keys, first

        try:
            frames, keys, first = scan(lo if lo > 0 else None)
            if lo > 0 and (first is None or first > lo + _EPS):
                # Some demuxers land after the wanted time: read from the start instead.
                c.seek(0, stream=v, backward=True)
                frames, keys, _ = scan(None)
        except av.FFmpegError as e:
            raise MediaError(f"{path}: its packets cannot be read: {e}",
                             hint="re-encode or fetch the file again") from e
    return _Grid(sorted(set(frames)), sorted(set(keys)))


def keyframe_times(path: str | os.PathLike[str], start: float = 0.0, end: float | None = None) -> list[float]:
    """Presentation times (seconds) of the keyframes of the first video stream in ``[start, end]``.

    Read from the packets (demux only, no decoding: a few ms a MB). Not from the
    container's index: mp4 index entries carry decode times, which precede the
    presentation times by the B-frame delay.
    """
    info = media.probe(path)
    hi = info.duration if end is None else end
    return [k for k in _packet_times(info.path, start, hi).keyframes if start - _EPS <= k <= hi + _EPS]


def next_frame_time(path: str | os.PathLike[str], t: float) -> float:
    """The presentation time of the first frame at or after ``t`` (``t`` itself when the
    packets carry no times, or when no frame follows). A cut made there with input
    seeking starts exactly on that frame."""
    frames = _packet_times(str(path), t - 2.0, t + 1.0).frames
    i = bisect.bisect_left(frames, t - _EPS)
    return frames[i] if i < len(frames) else t


def _snap(t: float, boundaries: list[float], frame: float) -> float:
    """The boundary nearest to ``t`` when one lies within a frame of it, else ``t``."""
    if not boundaries:
        return t
    i = bisect.bisect_left(boundaries, t)
    near = [b for b in boundaries[max(0, i - 1) : i + 1]]
    best = min(near, key=lambda b: abs(b - t))
    return best if abs(best - t) <= frame + 1e-9 else t


def _near(t: float, xs: list[float], tol: float = _EPS) -> bool:
    i = bisect.bisect_left(xs, t - tol)
    return i < len(xs) and abs(xs[i] - t) <= tol


# ---------------------------------------------------------------------------
# Planning


def _validate_range(source: str, start: float, end: float, duration: float, limits: ExportLimits) -> None:
    for name, v in (("start", start), ("end", end)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{name} {v!r} must be a finite number of seconds", hint="e.g. --start 12.5")
    if start < 0:
        raise InputError(f"start {start} s is negative", hint="times are seconds from the start of the video, >= 0")
    if end <= start:
        raise InputError(f"end {end} s must be after start {start} s", hint="give a range with end > start")
    if start >= duration:
        raise InputError(
            f"start {start} s is past the end of {source} ({duration:.3f} s long)",
            hint=f"pick a start below {duration:.3f} s",
        )
    if end > duration + _EPS:
        raise InputError(
            f"end {end} s is past the end of {source} ({duration:.3f} s long)",
            hint=f"pick an end at or below {duration:.3f} s",
        )
    if end - start > limits.max_duration_s + _EPS:
        raise ExportLimitError(
            f"the range {start}-{end} s is {end - start:.3f} s long, over the limit of {limits.max_duration_s} s",
            hint="export a shorter range or raise the duration limit (--max-duration)",
        )


def _copy_blockers(
    info: media.MediaInfo, s: float, e: float, at_end: bool, g_start: _Grid, g_end: _Grid
) -> list[str]:
    """Why the snapped range ``s``-``e`` cannot be stream-copied (none: it can)."""
    reasons: list[str] = []
    if info.video_codec != "h264":
        reasons.append(f"the video codec is {info.video_codec}, not H.264")
    if info.has_audio and info.audio_codec != "aac":
        reasons.append(f"the audio codec is {info.audio_codec}, not AAC")
    if not set(info.container.split(",")) & _COPY_CONTAINERS:
        reasons.append(f"the container {info.container} is not remuxed unchanged into MP4")
    if info.rotation:
        reasons.append(f"the video carries a {info.rotation} degree rotation")
    if not _near(s, g_start.keyframes):
        before = [k for k in g_start.keyframes if k <= s]
        after = [k for k in g_start.keyframes if k > s]
        near = ", ".join(f"{k:.3f}" for k in (before[-1:] + after[:1]))
        reasons.append(f"start {s:.3f} s is not on a keyframe" + (f" (nearest: {near} s)" if near else ""))
    if not at_end and not _near(e, g_end.keyframes):
        reasons.append(f"end {e:.3f} s is neither on a keyframe nor the end of the video")
    return reasons


def plan_export(
    source: str | os.PathLike[str],
    start: float,
    end: float,
    *,
    copy: CopyMode = "auto",
    limits: ExportLimits | None = None,
    info: media.MediaInfo | None = None,
) -> ExportPlan:
    """Check the range, snap it to frames and choose stream copy or re-encode.

    ``copy``: ``auto`` copies when it can (see the module docstring), ``never``
    always re-encodes, ``always`` copies or raises InputError saying why it cannot.
    Raises NotFoundError/MediaError for the source, InputError for a bad range and
    ExportLimitError for a range over the duration limit.
    """
    if copy not in COPY_MODES:
        raise InputError(f"copy mode {copy!r} is not one of {list(COPY_MODES)}", hint="use auto, never or always")
    limits = limits or ExportLimits()
    info = info or media.probe(source)
    src = info.path
    duration = float(info.duration)
    _validate_range(src, float(start), float(end), duration, limits)
    frame = 1.0 / info.fps if info.fps else 0.04
    g_start = _packet_times(src, start - 2.0, start + 1.0)
    g_end = _packet_times(src, end - 2.0, end + 1.0) if end < duration - _EPS else _Grid([], [])
    # A frame boundary is where a frame starts; the end of the last frame is the end.
    s = _snap(float(start), g_start.frames, frame / 2)
    e = _snap(float(end), [*g_end.frames, duration], frame / 2)
    if e >= duration - _EPS:
        e = duration
    if e - s < frame / 2:  # a range inside one frame still gives that frame
        e = min(duration, s + frame)
    reasons = _copy_blockers(info, s, e, e >= duration - _EPS, g_start, g_end)
    if copy == "never":
        mode, reason = "reencode", "stream copy turned off (copy=never)"
    elif reasons:
        if copy == "always":
            raise InputError(
                f"cannot stream-copy {s:.3f}-{e:.3f} s of {src}: {'; '.join(reasons)}",
                hint="use --copy auto (it re-encodes where needed), or start and end on keyframes",
            )
        mode, reason = "reencode", "re-encode: " + "; ".join(reasons)
    else:
        mode, reason = "copy", "stream copy: keyframe-aligned at both ends, H.264/AAC"
    return ExportPlan(
        source=src, requested_start=float(start), requested_end=float(end), start=s, end=e, mode=mode,
        reason=reason, has_audio=info.has_audio, fps=info.fps, width=info.width, height=info.height,
    )


# ---------------------------------------------------------------------------
# Cutting


def _remux(plan: ExportPlan, out: Path, limits: ExportLimits, progress: ProgressFn | None) -> None:
    """Stream copy: the packets presenting in ``[start, end)`` remuxed into MP4 (PyAV)."""
    s, e = plan.start, plan.end
    written = 0
    try:
        with av.open(plan.source) as ic, av.open(str(out), "w", format="mp4",
                                                 options={"movflags": "+faststart"}) as oc:
            v = ic.streams.video[0]
            streams = [v, *ic.streams.audio[:1]] if plan.has_audio else [v]
            omap = {st.index: oc.add_stream_from_template(st) for st in streams}
            origin = ic.start_time / av.time_base if ic.start_time is not None else 0.0
            # Seek a second early: audio packets that start just before the keyframe
            # sit before it in the file.
            ic.seek(int((max(0.0, s - 1.0) + origin) / v.time_base), stream=v, backward=True)
            last_report = -1.0
            for p in ic.demux(streams):
                if p.size == 0 or p.pts is None:
                    continue
                tb = p.time_base
                t = float(p.pts * tb) - origin
                dur = float(p.duration * tb) if p.duration else 0.0
                dts = float(p.dts * tb) - origin if p.dts is not None else t
                if dts > e + 2.0:
                    break
                if p.stream.type == "video":
                    keep = s - _EPS <= t < e - _EPS
                else:  # audio: the packets whose middle sounds inside the range (within half a packet)
                    keep = s - _EPS <= t + dur / 2 < e - _EPS
                if not keep:
                    continue
                shift = int(round((s + origin) / tb))
                p.pts -= shift
                if p.dts is not None:
                    p.dts -= shift
                p.stream = omap[p.stream.index]
                written += p.size
                if written > limits.max_bytes:
                    raise ExportLimitError(
                        f"the clip {s:.3f}-{e:.3f} s of {plan.source} grew past the size limit of"
                        f" {limits.max_bytes} bytes",
                        hint="export a shorter range or raise the size limit (--max-bytes)",
                    )
                oc.mux(p)
                if progress and t - last_report >= 0.5:
                    last_report = t
                    progress("export", min(1.0, max(0.0, (t - s) / max(e - s, 1e-9))))
    except (ExportLimitError, InputError):
        out.unlink(missing_ok=True)
        raise
    except (av.FFmpegError, OSError) as e2:
        out.unlink(missing_ok=True)
        raise MediaError(f"stream copy of {plan.source} failed: {e2}",
                         hint="retry with --copy never (re-encode)") from e2
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    if progress:
        progress("export", 1.0)


def _reencode(plan: ExportPlan, out: Path, limits: ExportLimits, progress: ProgressFn | None) -> None:
    frame = 1.0 / plan.fps if plan.fps else 0.04
    # Seek a hair before the first frame's time: a frame at exactly START must not be
    # dropped by a float rounding of its timestamp. The hair is far below a frame.
    eps = min(1e-3, frame / 8)
    args = [
        "-ss", f"{max(0.0, plan.start - eps):.6f}", "-i", plan.source, "-t", f"{plan.duration:.6f}",
        "-map", "0:v:0", *(["-map", "0:a:0"] if plan.has_audio else []),
        "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
        # 4:2:0 needs even sizes; most players need 4:2:0.
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", *FFMPEG_X264,
        *(_AAC if plan.has_audio else ("-an",)),
        "-movflags", "+faststart", "-f", "mp4",
    ]
    run_ffmpeg(args, out=out, expected_duration=plan.duration, max_bytes=limits.max_bytes, progress=progress,
               what=f"the clip {plan.start:.3f}-{plan.end:.3f} s of {plan.source}")


def export_clip(
    source: str | os.PathLike[str],
    start: float,
    end: float,
    out: str | os.PathLike[str],
    *,
    copy: CopyMode = "auto",
    limits: ExportLimits | None = None,
    progress: ProgressFn | None = None,
) -> ExportResult:
    """Write ``[start, end)`` of ``source`` to ``out`` as MP4; see the module docstring.

    The clip is written next to ``out`` under a temporary name and renamed when
    complete, so ``out`` is never a partial file.
    """
    limits = limits or ExportLimits()
    plan = plan_export(source, start, end, copy=copy, limits=limits)
    out = Path(out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder", hint="give a file name, e.g. clip.mp4")
    if not out.parent.is_dir():
        raise NotFoundError(f"the folder of {out} does not exist", hint="create it first")
    fd, tmp_name = tempfile.mkstemp(prefix=".clip-", suffix=".mp4", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        (_remux if plan.mode == "copy" else _reencode)(plan, tmp, limits, progress)
        size = tmp.stat().st_size
        if size > limits.max_bytes:
            raise ExportLimitError(
                f"the clip {plan.start:.3f}-{plan.end:.3f} s of {plan.source} is {size} bytes,"
                f" over the limit of {limits.max_bytes}",
                hint="export a shorter range or raise the size limit (--max-bytes)",
            )
        probed = media.probe(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s %.3f-%.3f s to %s (%s, %d bytes)", plan.source, plan.start, plan.end, out, plan.mode, size)
    return ExportResult(path=str(out), size_bytes=size, duration=float(probed.duration), plan=plan)


def export_to_temp(
    source: str | os.PathLike[str],
    start: float,
    end: float,
    *,
    copy: CopyMode = "auto",
    limits: ExportLimits | None = None,
    progress: ProgressFn | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """:func:`export_clip` into a new temporary file (the caller deletes it, e.g. with
    :func:`iter_file`)."""
    folder = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="vidseek-clip-", suffix=".mp4", dir=folder)
    os.close(fd)
    try:
        return export_clip(source, start, end, name, copy=copy, limits=limits, progress=progress)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def iter_file(path: str | os.PathLike[str], *, chunk_size: int = _CHUNK, delete: bool = True) -> Iterator[bytes]:
    """Yield a file's bytes in chunks of ``chunk_size``; delete it afterwards when
    ``delete`` (also when the consumer stops early and closes the generator)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk
    finally:
        if delete:
            p.unlink(missing_ok=True)
