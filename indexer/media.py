"""Media in: probe, seeking frame decode, cheap frame sampling and audio extraction (PyAV).

Everything here reads a file through PyAV (FFmpeg bundled in the ``av`` wheel) and
never trusts a file name's extension: content decides. A file that cannot be used
raises :class:`engine.errors.MediaError` (or :class:`NotFoundError` for a missing
path) naming the path, the reason and what to do, so the indexer can report it and
move on to the next file.

Times
    Every time in and out of this module is in seconds from the start of the file as
    a player shows it: a frame's presentation time minus the container's start time
    (MPEG-TS and MPEG-PS files often start at 0.2-1.4 s; mp4s with B-frames at a few
    hundredths). Audio uses the same origin, so sample ``i`` of :func:`load_audio`
    plays at ``i / sr`` and lines up with the frame times.

Damaged data
    Like the ``ffmpeg`` command line, decoding skips packets that fail to decode and
    goes on, logging how many it skipped; a stream that yields no frame at all raises
    MediaError. :func:`sample_frames` can fill a :class:`DecodeReport` (frames decoded,
    packets skipped, where decoding stopped, the spans no frame decoded in), from which
    :func:`assess_damage` judges whether a video is damaged and how much of it decodes.

Degenerate videos
    A video under :data:`MIN_VIDEO_SIDE` pixels on a side (e.g. 1x1) is rejected by
    :func:`probe`: its frames carry no picture, and upscaled to a model's input they
    would give a visual vector that matches queries by accident. The decode functions
    themselves still work on such files (nothing crashes on 1x1 frames).
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import stat
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.container
import av.error
import numpy as np

from engine.errors import InputError, MediaError, NotFoundError

__all__ = [
    "MIN_VIDEO_SIDE",
    "DurationSource",
    "MediaInfo",
    "probe",
    "frames_at",
    "sample_frames",
    "DecodeReport",
    "Damage",
    "assess_damage",
    "load_audio",
    "has_audio",
    "load_image",
]

log = logging.getLogger(__name__)

MIN_VIDEO_SIDE = 16
"""Smallest width or height (pixels, after rotation) that :func:`probe` accepts."""

DurationSource = Literal["container", "stream", "packets"]

# Frame times come from rational timestamps; a wanted time that equals a frame's time
# up to rounding must select that frame.
_TIME_EPS = 1e-3
# Below this size the packet scan (demux only, about 4 ms a MB measured) is cheap
# enough to run in probe just to count frames for an exact average frame rate.
_SCAN_LIMIT_BYTES = 256 * 1024 * 1024
# frames_at decodes forward instead of seeking when the next wanted time is at most
# this far ahead: a seek lands on the keyframe before and decodes from there anyway.
_FORWARD_WINDOW_S = 1.0
# sample_frames turns skip_frame=NONREF off when this many packets gave no frame.
_NONREF_PROBE_PACKETS = 32
_NO_VIDEO_HINT = "vidseek indexes videos; pass a file with a video track"


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a video file.

    ``width``/``height`` are the display size (after the rotation metadata is applied);
    ``rotation`` is the counter-clockwise turn in degrees (0, 90, 180, 270) that the
    stored frames need to be shown upright. ``duration_source`` says where the duration
    came from: the container header, the video stream header, or a scan of every
    packet (files with no duration in their header: raw elementary streams, Matroska
    written to a pipe). ``fps`` is the average frame rate (frames / duration when the
    frames were counted), so it is meaningful for variable-frame-rate files too; it is
    None only when no source at all gives one. ``frame_count`` is the number of
    frames the container holds (its header's count, or counted packets; None when
    the header has none and the file is too large to scan in a probe).
    ``start_time`` is the container's first timestamp, which all times of this module
    subtract. Codec names are FFmpeg's (as ffprobe prints them: ``msmpeg4v3``, ``mp3``).
    ``video_duration`` is the video stream's own span (its header, or the packet scan;
    None when neither gives one): shorter than ``duration`` when the audio runs longer.
    """

    path: str
    size_bytes: int
    container: str
    duration: float
    duration_source: DurationSource
    width: int
    height: int
    rotation: int
    fps: float | None
    frame_count: int | None
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    start_time: float
    video_duration: float | None = None


# ---------------------------------------------------------------------------
# Opening files and mapping FFmpeg's errors to ours


def _check_path(path: str | os.PathLike[str]) -> Path:
    """Stat ``path``; raise NotFoundError or MediaError for anything but a non-empty file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise NotFoundError(
            f"{p}: no such file", hint="check the path; a relative one is resolved from the current directory"
        ) from None
    except PermissionError as e:
        raise MediaError(f"{p}: cannot be read: permission denied", hint="fix the file's permissions") from e
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(
            f"{p}: is a directory, not a video file",
            hint="pass the video files inside it; vidseek index walks folders itself",
        )
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"{p}: is not a regular file", hint="copy the video to a regular file first")
    if st.st_size == 0:
        raise MediaError(f"{p}: is empty (0 bytes)", hint="the copy or download probably failed; fetch the file again")
    return p


def _open(p: Path) -> av.container.InputContainer:
    """Open ``p`` for reading, with FFmpeg's failures turned into MediaError."""
    try:
        return av.open(str(p), mode="r")
    except av.error.FileNotFoundError:
        raise NotFoundError(f"{p}: no such file", hint="check the path") from None
    except av.error.PermissionError as e:
        raise MediaError(f"{p}: cannot be read: permission denied", hint="fix the file's permissions") from e
    except av.error.InvalidDataError as e:
        raise MediaError(
            f"{p}: is not a media file FFmpeg can read, or its header is damaged ({e.strerror})",
            hint="check that the file is complete (a cut-short download loses an mp4's index, often at the end)",
        ) from e
    except av.error.EOFError as e:
        raise MediaError(
            f"{p}: contains no media data (zero duration: an empty recording or a truncated file)",
            hint="re-export or fetch the file again",
        ) from e
    except (av.FFmpegError, OSError) as e:
        raise MediaError(f"{p}: cannot be opened: {e}", hint="check that the file is a readable video") from e


def _video_stream(c: av.container.InputContainer, p: Path) -> av.video.stream.VideoStream:
    if not c.streams.video:
        if c.streams.audio:
            raise MediaError(f"{p}: has no video stream (audio only)", hint=_NO_VIDEO_HINT)
        raise MediaError(f"{p}: has no video stream (no audio or video streams at all)", hint=_NO_VIDEO_HINT)
    v = c.streams.video[0]
    if v.codec_context is None:
        raise MediaError(
            f"{p}: its video codec has no decoder in PyAV's bundled FFmpeg",
            hint="re-encode the file to H.264 (ffmpeg -i IN -c:v libx264 OUT.mp4)",
        )
    return v


def _is_still_image_format(name: str) -> bool:
    # FFmpeg opens single pictures through its image demuxers: image2 and *_pipe
    # (png_pipe, jpeg_pipe, webp_pipe, ...). Animated formats (gif, apng) are videos.
    return any(part == "image2" or part.endswith("_pipe") for part in name.split(","))


def _origin(c: av.container.InputContainer) -> float:
    """The container's start time in seconds: the zero of every time this module returns."""
    return c.start_time / av.time_base if c.start_time is not None else 0.0


def _frame_time(frame: av.VideoFrame | av.AudioFrame) -> float | None:
    t = frame.time if frame.pts is not None else None
    if t is None or math.isnan(t):
        return None
    return t


def _rational(x: Fraction | None) -> float | None:
    return float(x) if x else None


class _Clock:
    """Frame times in seconds from the container's start.

    Streams without timestamps (raw elementary streams) get times by adding up frame
    durations, which the parser knows; failing that, by the guessed frame rate (the
    header's average rate is a demuxer default, 25, for raw H.264).
    """

    def __init__(self, c: av.container.InputContainer, v: av.video.stream.VideoStream) -> None:
        self.origin = _origin(c)
        self.time_base = v.time_base
        self.step = 1.0 / (_rational(v.guessed_rate) or _rational(v.average_rate) or 25.0)
        self.timed: bool | None = None  # decided by the first frame
        self.elapsed = Fraction(0)  # exact, so that 10 frames of 0.1 s make 1.0 s

    def __call__(self, frame: av.VideoFrame) -> float | None:
        """The frame's time, or None for a frame without one in a timed stream.

        Untimed streams must have every frame decoded (no skip_frame), or the count drifts.
        """
        t = _frame_time(frame)
        if self.timed is None:
            self.timed = t is not None
        if self.timed:
            return None if t is None else t - self.origin
        now = float(self.elapsed)
        if frame.duration and self.time_base:
            self.elapsed += frame.duration * self.time_base
        else:
            self.elapsed += Fraction(self.step).limit_denominator(1_000_000)
        return now


def _normalise_rotation(degrees: float) -> int:
    # Display matrices can hold any angle; players snap to quarter turns.
    return int(round(degrees / 90.0)) * 90 % 360


# ---------------------------------------------------------------------------
# Decoding with damaged packets skipped


class _TolerantDecoder:
    """Decode one stream's packets, skipping (and counting) those FFmpeg rejects."""

    def __init__(self, p: Path) -> None:
        self.path = p
        self.errors = 0
        self.frames = 0
        self.last_error: str | None = None
        self.stopped: str | None = None  # the demuxer's error when reading ended early

    def decode(self, packet: av.Packet) -> list:
        if packet.size == 0 and (packet.pts is not None or packet.dts is not None):
            # An empty timed packet means "repeat the previous frame" (Theora, some
            # AVIs); FFmpeg rejects it with EINVAL. Only the untimed empty packet at
            # the end of the demux is the flush that drains the decoder.
            return []
        try:
            frames = packet.decode()
        except av.FFmpegError as e:
            self.errors += 1
            self.last_error = str(e)
            log.debug("%s: skipped a packet that failed to decode: %s", self.path, e)
            return []
        self.frames += len(frames)
        return frames

    def demux(self, c: av.container.InputContainer, stream: av.stream.Stream) -> Iterator[av.Packet]:
        """Packets of ``stream``; a container that breaks mid-file ends the stream early."""
        try:
            yield from c.demux(stream)
        except av.FFmpegError as e:
            # The demuxer cannot resync after this (truncated file, damaged index):
            # what was decoded so far stays usable, and the caller hears about it.
            self.errors += 1
            self.last_error = str(e)
            self.stopped = e.strerror or type(e).__name__  # no path: it may reach API clients
            log.warning("%s: reading stopped early, the file is damaged: %s", self.path, e)

    def failure(self, what: str) -> MediaError:
        """The error for a stream of which nothing decoded."""
        reason = f" (last error: {self.last_error})" if self.last_error else ""
        return MediaError(
            f"{self.path}: no {what} could be decoded{reason}",
            hint="the file is corrupt or truncated; re-encode it or fetch it again",
        )

    def finish(self, what: str) -> None:
        """Raise MediaError when nothing decoded; log how much was skipped otherwise."""
        if self.frames == 0:
            raise self.failure(what)
        if self.errors:
            log.warning("%s: skipped %d damaged %s packet(s)", self.path, self.errors, what)


def _first_frame(c: av.container.InputContainer, v: av.video.stream.VideoStream, p: Path) -> av.VideoFrame:
    dec = _TolerantDecoder(p)
    for packet in dec.demux(c, v):
        frames = dec.decode(packet)
        if frames:
            return frames[0]
    raise dec.failure("video frame")


# ---------------------------------------------------------------------------
# probe


@dataclass(frozen=True)
class _PacketScan:
    count: int
    duration: float | None


def _scan_packets(p: Path, v_index: int, fps_hint: float | None) -> _PacketScan:
    """Demux (no decoding) every video packet: count them and measure their time span."""
    with _open(p) as c:
        v = c.streams.video[v_index]
        tb = v.time_base
        count = 0
        lo: int | None = None
        hi: int | None = None
        summed = 0
        all_durations = True
        dec = _TolerantDecoder(p)
        for packet in dec.demux(c, v):
            if packet.size == 0 and packet.pts is None:
                continue  # the demuxer's end-of-stream flush, not a frame
            # Empty timed packets still count: each repeats the previous frame.
            count += 1
            dur = packet.duration or 0
            summed += dur
            all_durations &= dur > 0
            if packet.pts is not None:
                lo = packet.pts if lo is None else min(lo, packet.pts)
                hi = packet.pts + dur if hi is None else max(hi, packet.pts + dur)
    if lo is not None and hi is not None and hi > lo and tb:
        return _PacketScan(count, float((hi - lo) * tb))
    # No timestamps at all (raw elementary streams): the parser still knows each
    # packet's duration; failing that, the frame rate does.
    if count and all_durations and tb:
        return _PacketScan(count, float(summed * tb))
    if count and fps_hint:
        return _PacketScan(count, count / fps_hint)
    return _PacketScan(count, None)


def _display_size(first: av.VideoFrame, p: Path) -> tuple[int, int, int]:
    """(width, height, rotation) of the picture as shown, from the first decoded frame;
    MediaError when it is under MIN_VIDEO_SIDE pixels."""
    rotation = _normalise_rotation(first.rotation)
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    if min(width, height) < MIN_VIDEO_SIDE:
        raise MediaError(
            f"{p}: the picture is degenerate ({width}x{height} pixels; the minimum is {MIN_VIDEO_SIDE})",
            hint="a video this small shows nothing to index; re-encode it at a real resolution or leave it out",
        )
    return width, height, rotation


def _timing(
    c: av.container.InputContainer, v: av.video.stream.VideoStream, p: Path, size_bytes: int
) -> tuple[float, DurationSource, float | None, int | None, float | None]:
    """(duration, where it came from, fps, frame count, the video stream's own span) of
    video stream ``v`` in container ``c``.

    The container's duration first, else the stream's, else a packet scan (which also
    counts the frames of files up to _SCAN_LIMIT_BYTES whose header has no count);
    MediaError for a zero duration.
    """
    fps = _rational(v.average_rate) or _rational(v.guessed_rate)
    frame_count = v.frames or None
    duration: float | None = None
    source: DurationSource | None = None
    # The video stream's own span, for the frame rate (the container's duration
    # also covers an audio track that runs longer).
    video_span = float(v.duration * v.time_base) if v.duration and v.time_base else None
    if c.duration is not None and c.duration > 0:
        duration, source = c.duration / av.time_base, "container"
    elif video_span:
        duration, source = video_span, "stream"
    if duration is None or (frame_count is None and size_bytes <= _SCAN_LIMIT_BYTES):
        scan = _scan_packets(p, v.index, fps)
        frame_count = scan.count or None
        video_span = video_span or scan.duration
        if duration is None and scan.duration:
            duration, source = scan.duration, "packets"
    if duration is None or source is None or duration <= 0:
        raise MediaError(
            f"{p}: has zero duration (no timed video frames)",
            hint="the recording is empty or cut short; re-export it",
        )
    if frame_count:
        # Counted frames over their time span is the true average, also for a
        # variable frame rate, where the header's rate is a guess from the first frames.
        fps = frame_count / (video_span or duration)
    return duration, source, fps, frame_count, video_span


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Read a video's container and stream facts; decode its first frame to prove it plays.

    Raises NotFoundError for a missing path and MediaError for anything that is not a
    usable video: a directory, an empty file, a non-media or still-image file, a
    file whose header or frames cannot be decoded, a file without a video stream, a
    zero-duration file, or a picture under MIN_VIDEO_SIDE pixels.
    """
    p = _check_path(path)
    size_bytes = p.stat().st_size
    with _open(p) as c:
        v = _video_stream(c, p)
        fmt = c.format.name
        if _is_still_image_format(fmt):
            raise MediaError(f"{p}: is a still image ({fmt}), not a video", hint=_NO_VIDEO_HINT)
        width, height, rotation = _display_size(_first_frame(c, v, p), p)
        duration, source, fps, frame_count, video_span = _timing(c, v, p, size_bytes)
        audio = c.streams.audio[0] if c.streams.audio else None
        return MediaInfo(
            path=str(path),
            size_bytes=size_bytes,
            container=fmt,
            duration=duration,
            duration_source=source,
            width=width,
            height=height,
            rotation=rotation,
            fps=fps,
            frame_count=frame_count,
            video_codec=v.codec_context.codec.canonical_name,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
            sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            channels=audio.codec_context.channels if audio is not None else None,
            start_time=_origin(c),
            video_duration=video_span,
        )


# ---------------------------------------------------------------------------
# Damage: how much of a video decodes

# A video is damaged when at least this much of its picture does not decode: the end
# (a cut-short file) or spans in the middle (corrupt data). Less is what a healthy file
# shows too: a stream that starts a few frames before its first keyframe, a header
# duration rounded up, a last frame a few hundredths short of the container's end.
DAMAGE_MIN_S = 1.0


@dataclass
class DecodeReport:
    """What one :func:`sample_frames` pass met, filled when its iteration has read the
    whole file (left empty when the caller stops early). ``frames``: frames decoded; ``errors``: packets that failed to
    decode (plus one when the demuxer stopped early); ``stopped``: the demuxer's error
    when reading ended before the end of the file; ``last_time``: the time of the last
    frame decoded; ``gaps``: spans ``(from, to)`` between two decoded frames (from 0
    before the first) in which packets failed to decode; ``tail_errors``: packets
    failed after the last frame decoded."""

    frames: int = 0
    errors: int = 0
    stopped: str | None = None
    last_time: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    tail_errors: bool = False


@dataclass(frozen=True)
class Damage:
    """A damaged video: why, and how much of it decodes (seconds).

    ``decodable_end``: where the last decodable frame ends (the duration to record);
    ``decodable_duration``: the seconds of picture that decode (``decodable_end`` less
    the spans in the middle that do not); ``probed_duration``: what the header said;
    ``gaps``: the undecodable spans, the missing end included."""

    reason: str
    decodable_end: float
    decodable_duration: float
    probed_duration: float
    gaps: tuple[tuple[float, float], ...] = ()
    skipped_packets: int = 0

    def as_dict(self) -> dict:
        return {"reason": self.reason, "decodable_duration": round(self.decodable_duration, 3),
                "decodable_end": round(self.decodable_end, 3), "probed_duration": round(self.probed_duration, 3),
                "gaps": [[round(a, 3), round(b, 3)] for a, b in self.gaps], "skipped_packets": self.skipped_packets}


def assess_damage(info: MediaInfo, report: DecodeReport, *, min_s: float = DAMAGE_MIN_S) -> Damage | None:
    """Whether a video whose frames were sampled into ``report`` is damaged (None: not).

    Damaged: the frames stop at least ``min_s`` before the video stream's probed end (a
    cut-short file: its header still claims the whole length), or packets that failed to
    decode leave at least ``min_s`` without a frame in the middle. Audio is not judged:
    the picture is what the index is made of, and audio packets that fail to decode are
    skipped and logged by :func:`load_audio`.
    """
    if report.last_time is None:
        return None  # nothing decoded: sample_frames raised MediaError already
    probed = float(info.duration)
    expected = min(probed, info.video_duration) if info.video_duration else probed
    step = 1.0 / info.fps if info.fps and info.fps > 0 else 0.04
    step = min(max(step, 1.0 / 240), 1.0)
    end = min(expected, report.last_time + step)
    gaps: list[tuple[float, float]] = []
    for a, b in report.gaps:  # sorted; spans one decoded frame apart are one damaged stretch
        if b - a - step < 1e-6:
            continue
        if gaps and a <= gaps[-1][1] + step + _TIME_EPS:
            gaps[-1] = (gaps[-1][0], max(b, gaps[-1][1]))
        else:
            gaps.append((a, b))
    middle = sum(b - a - step for a, b in gaps)
    missing_end = expected - end
    why: list[str] = []
    if missing_end >= min_s:
        cause = (f"reading stopped: {report.stopped}" if report.stopped else
                 f"{report.errors} packet(s) failed to decode" if report.errors else "no frames past it")
        why.append(f"frames decode only to {end:.1f} s of {expected:.1f} s ({cause}; a truncated file?)")
        gaps.append((end, expected))
    if middle >= min_s:
        spans = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in gaps if b <= end)
        why.append(f"{middle:.1f} s in the middle do not decode ({spans}; {report.errors} packet(s) skipped)")
    if not why:
        return None
    return Damage("; ".join(why), decodable_end=end, decodable_duration=max(0.0, end - middle),
                  probed_duration=probed, gaps=tuple(gaps), skipped_packets=report.errors)


# ---------------------------------------------------------------------------
# Frames


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_array(frame: av.VideoFrame, max_side: int | None, fmt: str = "rgb24") -> np.ndarray:
    """Convert (and shrink) a decoded frame; turn it upright per its display matrix."""
    w, h = _scaled_size(frame.width, frame.height, max_side)
    if (w, h) != (frame.width, frame.height):
        # AREA averages the source pixels a target pixel covers: no aliasing when
        # shrinking a lot, which matters for the cut detector's differences. Scaling
        # in the decoder's own pixel format and converting the small picture after
        # is 3x faster than swscale's combined scale-and-convert (0.8 vs 2.4 ms for
        # 768x576 to 160x120, measured).
        frame = frame.reformat(width=w, height=h, interpolation="AREA")
    if frame.format.name != fmt:
        frame = frame.reformat(format=fmt)
    arr = frame.to_ndarray()
    quarter_turns = _normalise_rotation(frame.rotation) // 90
    if quarter_turns:
        # VideoFrame.rotation is counter-clockwise, as is np.rot90: this matches
        # what ffmpeg's autorotate shows.
        arr = np.rot90(arr, k=quarter_turns)
    # Negative strides from rot90 trip up torch.from_numpy and some OpenCV calls.
    return np.ascontiguousarray(arr)


def _validate_time(t: float) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise InputError(f"frame time {t!r} is not a number", hint="pass times in seconds") from None
    if not math.isfinite(t) or t < 0:
        raise InputError(f"frame time {t!r} is not a finite, non-negative number of seconds", hint="pass times >= 0")
    return t


class _SeekingReader:
    """Serves 'the frame on screen at t' for arbitrary times, seeking as little as it can."""

    def __init__(self, p: Path) -> None:
        self.path = p
        self.c = _open(p)
        try:
            self._start()
        except BaseException:
            self.c.close()
            raise

    def _restart(self) -> None:
        self.c.close()
        self.c = _open(self.path)
        self._start()

    def _start(self) -> None:
        self.v = _video_stream(self.c, self.path)
        self.origin = _origin(self.c)
        self.clock = _Clock(self.c, self.v)
        self.dec = _TolerantDecoder(self.path)
        self.prev: tuple[float, av.VideoFrame] | None = None  # last frame at or before the position
        self.ahead: tuple[float, av.VideoFrame] | None = None  # decoded, not yet reached
        self.keyframes = self._keyframe_times()
        self.frames = self._decode()
        # The first frame tells whether the stream has timestamps to seek by.
        self.ahead = next(self.frames, None)
        if self.ahead is None:
            raise self.dec.failure("video frame")

    def close(self) -> None:
        self.c.close()

    def _keyframe_times(self) -> list[float]:
        """Keyframe times from a complete container index (mp4, AVI), ascending; else [].

        Only an index with an entry for every frame is trusted: MPEG-PS, for one, opens
        with a few entries from its first and last second (gaps of a minute that say
        nothing about keyframes), and Matroska cues list only some keyframes.
        """
        entries = self.v.index_entries
        tb = self.v.time_base
        if not tb or not self.v.frames or len(entries) < self.v.frames:
            return []
        return sorted(float(e.timestamp * tb) - self.origin for e in entries if e.is_keyframe)

    def _worth_seeking(self, position: float, t: float) -> bool:
        """Whether to seek from ``position`` forward to ``t`` rather than decode there."""
        if t <= position + _FORWARD_WINDOW_S:
            return False
        keys = self.keyframes
        if keys and keys[-1] >= t:
            # The index covers t: seeking helps only if a keyframe lies in between
            # (AVI with 20 s GOPs: 24 seeks decoded the same GOPs over and over).
            return bisect.bisect_right(keys, t + _TIME_EPS) > bisect.bisect_right(keys, position + _TIME_EPS)
        return True

    def _decode(self) -> Iterator[tuple[float, av.VideoFrame]]:
        for packet in self.dec.demux(self.c, self.v):
            for frame in self.dec.decode(packet):
                t = self.clock(frame)
                if t is not None:
                    yield t, frame

    def _seek(self, t: float) -> None:
        """Position before ``t``: the keyframe at or before it, backing off if the seek overshoots."""
        back = 0.0
        while True:
            target = t - back
            if target <= 0.0 or not self.clock.timed:
                # Reading from the start is always right: the way back to 0 (a seek
                # to 0 in MPEG-PS can land on a later keyframe) and the only way in
                # streams without timestamps (raw elementary streams).
                self._restart()
                return
            try:
                self.c.seek(int((target + self.origin) / self.v.time_base), stream=self.v, backward=True)
            except av.FFmpegError as e:
                log.debug("%s: seek to %.3f s failed (%s); reading from the start", self.path, target, e)
                self._restart()
                return
            self.prev = None
            self.ahead = None
            self.frames = self._decode()
            first = next(self.frames, None)
            if first is not None and first[0] <= t + _TIME_EPS:
                self.ahead = first
                return
            # MPEG-PS, Ogg and damaged indexes can land after the wanted time, or past
            # the last keyframe with nothing left to decode: try again further back.
            back = max(2 * back, 0.5)

    def frame_at(self, t: float) -> tuple[float, av.VideoFrame]:
        position = self.prev[0] if self.prev else (self.ahead[0] if self.ahead else None)
        if position is None or t + _TIME_EPS < position or self._worth_seeking(position, t):
            self._seek(t)
        while True:
            if self.ahead is None:
                self.ahead = next(self.frames, None)
                if self.ahead is None:  # end of stream: the last frame stays on screen
                    if self.prev is None:
                        raise self.dec.failure("video frame")
                    return self.prev
            if self.ahead[0] > t + _TIME_EPS:
                # Wanted time precedes the first frame after a fresh start: show that frame.
                return self.prev if self.prev is not None else self.ahead
            self.prev, self.ahead = self.ahead, None


def frames_at(
    path: str | os.PathLike[str],
    times: Iterable[float],
    size: int | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t_actual, rgb)`` for each wanted time, in the order given.

    ``rgb`` is the frame on screen at that time (the last frame whose presentation
    time is at or before it) as an HxWx3 uint8 array, turned upright; ``size`` caps
    its longest side (never enlarges). ``t_actual`` is that frame's own time. Each
    time seeks to the keyframe before it and decodes forward from there, except that
    decoding simply goes on to a time that is less than 1 s ahead, or ahead with no
    keyframe in between by the container's index. Times past the end give the last
    frame. For many times, pass them in ascending order.

    Arguments and the path are checked at the call (InputError for a negative or
    non-finite time, NotFoundError/MediaError for the path); the file is opened when
    iteration starts and closed when it ends or the iterator is closed.
    """
    wanted = [_validate_time(t) for t in times]
    if size is not None and size < 1:
        raise InputError(f"size {size!r} must be a positive number of pixels", hint="pass e.g. size=224 or None")
    return _frames_at(_check_path(path), wanted, size)


def _frames_at(p: Path, wanted: list[float], size: int | None) -> Iterator[tuple[float, np.ndarray]]:
    if not wanted:
        return
    reader = _SeekingReader(p)
    try:
        for t in wanted:
            t_actual, frame = reader.frame_at(t)
            yield t_actual, _to_array(frame, size)
    finally:
        reader.close()


def sample_frames(
    path: str | os.PathLike[str],
    fps: float = 2.0,
    max_side: int = 160,
    *,
    gray: bool = False,
    skip_nonref: bool = True,
    report: DecodeReport | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, frame)`` about every ``1/fps`` seconds: small frames for cut detection.

    ``frame`` is HxWx3 RGB (or HxW luma with ``gray=True``) with its longest side at
    most ``max_side``, turned upright. ``t`` is the frame's own time: the first frame at
    or after each multiple of ``1/fps``.

    One forward pass over the packets, decoding only what is needed: packets are held
    back until one reaches the next wanted time; then they are decoded from the last
    keyframe on. A keyframe that arrives while nothing is wanted drops the held
    packets of its GOP unseen. So short-GOP files (MPEG-1, intra-heavy) decode a few
    frames per sample, long-GOP files decode about everything, and nothing seeks
    (a measured 10x slower than decoding for 2 samples a second on long-GOP files).

    ``skip_nonref`` lets the decoder skip frames that no other frame references
    (B-frames): 40% less CPU on a 1080p H.264 clip, at the price of a sample landing
    up to a few frames after its wanted time. Pass False for exact sampling.

    ``report``: a :class:`DecodeReport` filled while the iteration runs (what decoded,
    what was skipped, where reading stopped), for :func:`assess_damage`.

    Arguments and the path are checked at the call; the file is opened when iteration
    starts.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps {fps!r} must be a positive number", hint="e.g. fps=2.0")
    if max_side < 1:
        raise InputError(f"max_side {max_side!r} must be a positive number of pixels", hint="e.g. max_side=160")
    return _sample_frames(_check_path(path), float(fps), max_side, "gray" if gray else "rgb24", skip_nonref,
                          report if report is not None else DecodeReport())


def _fill_report(report: DecodeReport, dec: _TolerantDecoder, decoded: array, failed: list[float]) -> None:
    """What a decode pass met: each failed packet's time falls between two decoded frames
    (a gap), or after the last one (tail errors)."""
    times = sorted(decoded)
    report.frames, report.errors, report.stopped = dec.frames, dec.errors, dec.stopped
    report.last_time = times[-1] if times else None
    report.tail_errors = dec.stopped is not None
    gaps: set[tuple[float, float]] = set()
    for e in failed:
        i = bisect.bisect_right(times, e)
        if i == len(times):
            report.tail_errors = True
        else:
            gaps.add((times[i - 1] if i else 0.0, times[i]))
    report.gaps = sorted(gaps)


def _sample_frames(
    p: Path, fps: float, max_side: int, fmt: str, skip_nonref: bool, report: DecodeReport
) -> Iterator[tuple[float, np.ndarray]]:
    c = _open(p)
    try:
        v = _video_stream(c, p)
        cc = v.codec_context
        # Frame threads: two cores decode two frames at once; the added latency of a
        # few frames does not matter in a forward pass.
        cc.thread_type = "AUTO"
        if skip_nonref:
            cc.skip_frame = "NONREF"
        origin = _origin(c)
        clock = _Clock(c, v)
        interval = 1.0 / fps
        tb = v.time_base
        dec = _TolerantDecoder(p)
        k = 0  # next wanted time is k * interval
        held: list[av.Packet] = []
        feeding = True  # decode everything until the first frame shows timing works
        fed_max = -math.inf  # latest packet time fed to the decoder
        timed = True
        fed = 0
        # Times of the frames decoded and of the packets that failed (for the report's
        # gaps: the decoder hands frames out some packets after it took them in).
        decoded: array[float] = array("d")
        failed: list[float] = []
        for packet in dec.demux(c, v):
            pt = packet.pts if packet.pts is not None else packet.dts
            ptime = float(pt * tb) - origin if (pt is not None and tb) else None
            if ptime is None and packet.size and timed:
                # Without timestamps nothing can be skipped: the clock counts frames.
                timed = False
                cc.skip_frame = "DEFAULT"
            if packet.size == 0 and not feeding:
                continue  # end of stream while paused: nothing held back is wanted
            if timed and packet.size and not feeding:
                if packet.is_keyframe:
                    # Nothing in the held GOP is wanted: drop it, and the frames the
                    # decoder still holds (all earlier than the next wanted time).
                    held.clear()
                    cc.flush_buffers()
                held.append(packet)
                if ptime is not None and ptime < k * interval - _TIME_EPS:
                    continue
                feeding = True
                to_feed, held = held, []
            else:
                to_feed, held = [*held, packet], []
            for pk in to_feed:
                if pk.size and pk.pts is not None and tb:
                    fed_max = max(fed_max, float(pk.pts * tb) - origin)
                fed += 1
                if skip_nonref and dec.frames == 0 and fed == _NONREF_PROBE_PACKETS:
                    # A stream whose frames are all marked unreferenced (some
                    # intra-only encoders) would decode to nothing: decode it all.
                    cc.skip_frame = "DEFAULT"
                errors = dec.errors
                frames = dec.decode(pk)
                if dec.errors > errors and pk.pts is not None and tb:
                    failed.append(float(pk.pts * tb) - origin)
                for frame in frames:
                    t = clock(frame)
                    if t is not None:
                        decoded.append(t)
                    if t is None or t + _TIME_EPS < k * interval:
                        continue
                    yield t, _to_array(frame, max_side, fmt)
                    while k * interval <= t + _TIME_EPS:
                        k += 1
                    # Pause when no frame fed so far can be the next wanted one.
                    feeding = not timed or fed_max >= k * interval - _TIME_EPS
        _fill_report(report, dec, decoded, failed)
        dec.finish("video frame")
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Audio


def has_audio(path: str | os.PathLike[str]) -> bool:
    """True when the file has an audio stream; False when it has none.

    Still raises NotFoundError/MediaError for a path that is not a readable media file.
    """
    p = _check_path(path)
    with _open(p) as c:
        return bool(c.streams.audio)


def load_audio(path: str | os.PathLike[str], sr: int = 16000) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sr`` Hz, in [-1, 1].

    Decodes and resamples frame by frame (only the output is held in memory).
    Sample ``i`` plays at ``i / sr`` seconds on the same clock as the video frames:
    audio that starts after the container's start is padded with leading silence.
    Raises MediaError when there is no audio stream or nothing decodes.
    """
    if not isinstance(sr, int) or sr <= 0:
        raise InputError(f"sample rate {sr!r} must be a positive integer", hint="e.g. sr=16000")
    p = _check_path(path)
    with _open(p) as c:
        if not c.streams.audio:
            raise MediaError(
                f"{p}: has no audio stream",
                hint="call has_audio() first, or index the video without speech",
            )
        a = c.streams.audio[0]
        origin = _origin(c)
        duration = c.duration / av.time_base if c.duration else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        dec = _TolerantDecoder(p)
        chunks: list[np.ndarray] = []
        start: float | None = None
        for packet in dec.demux(c, a):
            for frame in dec.decode(packet):
                if start is None:
                    start = _frame_time(frame)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        dec.finish("audio frame")
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    lead_s = (start - origin) if start is not None else 0.0
    if 0.0 < lead_s <= duration:
        # Audio that starts after the video: silence keeps sample i at i / sr.
        samples = np.concatenate([np.zeros(round(lead_s * sr), dtype=np.float32), samples])
    elif lead_s != 0.0:
        # A negative start is pre-roll the decoder has already dropped (AAC priming),
        # and a start past the end is a broken timestamp (seen in an Ogg file whose
        # granule positions jump by seconds); like ffmpeg, keep the samples as decoded.
        log.debug("%s: audio starts at %.3f s; not shifted", p, lead_s)
    return samples.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------
# Still images (query by example)


def load_image(path: str | os.PathLike[str], max_side: int | None = None) -> np.ndarray:
    """Read a picture (JPEG, PNG, WebP, ...) as an upright HxWx3 uint8 RGB array.

    For image queries (``vidseek search --image FILE``). Pillow, not FFmpeg: it applies
    the EXIF orientation that phone photos carry. ``max_side`` caps the longest side.
    Raises NotFoundError for a missing path and MediaError for anything Pillow cannot
    read as a picture (it checks content, not the extension).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = _check_path(path)
    if max_side is not None and max_side < 1:
        raise InputError(f"max_side {max_side!r} must be a positive number of pixels", hint="e.g. max_side=224")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            if max_side is not None and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), Image.Resampling.BOX)
            return np.asarray(im, dtype=np.uint8).copy()
    except UnidentifiedImageError as e:
        raise MediaError(f"{p}: is not a picture Pillow can read", hint="pass a JPEG, PNG or WebP file") from e
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise MediaError(f"{p}: the picture cannot be decoded: {e}", hint="re-save it as PNG or JPEG") from e
