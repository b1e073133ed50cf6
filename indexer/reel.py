"""Reel rendering: join time ranges of one or more videos with short cross-fades into one MP4.

One FFmpeg run with a filter graph: each range is read with input seeking
(``-ss``/``-t`` before ``-i``, frame-accurate with decoding), normalised to one
picture size (scaled to fit, letterboxed), one frame rate, yuv420p, and for audio
48 kHz stereo (a range of a video without audio gets generated silence, so the
audio cross-fades line up with the video's); then ``xfade`` chains the pictures and
``acrossfade`` the sounds. Video and audio are encoded once, H.264/AAC.

Timing
    Each range starts on the first frame of its source at or after its start (its
    ``start`` is moved there). Durations are snapped to the output frame grid: each range *down* to a whole
    number of frames, the fade *up* to one. So the reel is never longer than the sum
    of the requested ranges minus the fades, which is what a highlight selection
    plans within its target. Range ``k`` plays in the output from ``output_in`` to
    ``output_out``; consecutive ranges overlap by the fade, so
    ``output_in[k+1] = output_out[k] - fade`` and the reel lasts
    ``sum(durations) - (n - 1) * fade``. :class:`ReelResult` reports the snapped times.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from engine.errors import InputError, NotFoundError
from indexer import media
from indexer.export import FFMPEG_X264, ExportLimitError, ExportLimits, ProgressFn, next_frame_time, run_ffmpeg

__all__ = ["ReelPiece", "ReelFormat", "RenderedPiece", "ReelResult", "reel_format_for", "plan_reel", "render_reel"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
MAX_SIZE = (1920, 1080)
MAX_FPS = 60


@dataclass(frozen=True)
class ReelPiece:
    """A range ``[start, end)`` (seconds) of the video at ``source``."""

    source: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start < 0 or self.end <= self.start:
            raise InputError(f"reel piece {self.source} {self.start}-{self.end} s must have 0 <= start < end")


@dataclass(frozen=True)
class ReelFormat:
    """The output picture size, frame rate (a fraction, e.g. 30000/1001) and sample rate."""

    width: int
    height: int
    fps: Fraction
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise InputError(f"reel size {self.width}x{self.height} must be even and at least 2x2")
        if not 0 < self.fps <= 240:
            raise InputError(f"reel frame rate {self.fps} must be in (0, 240]")


@dataclass(frozen=True)
class RenderedPiece:
    """Where one range landed: source ``start``/``end`` after snapping to frames, and
    ``output_in``/``output_out`` in the reel."""

    source: str
    start: float
    end: float
    output_in: float
    output_out: float

    @property
    def duration(self) -> float:
        return self.output_out - self.output_in


@dataclass(frozen=True)
class ReelResult:
    """A written reel: its planned timing and what the file holds (probed)."""

    path: str
    pieces: tuple[RenderedPiece, ...]
    fade: float
    duration: float
    probed_duration: float
    has_audio: bool
    width: int
    height: int
    fps: float
    size_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def reel_format_for(infos: Sequence[media.MediaInfo]) -> ReelFormat:
    """The first range's picture size (fitted into 1920x1080, even) and frame rate
    (capped at 60): the reel looks like the video it opens with."""
    if not infos:
        raise InputError("a reel needs at least one range")
    first = infos[0]
    # The long side within 1920 and the short side within 1080, portrait or landscape.
    scale = min(1.0, MAX_SIZE[0] / max(first.width, first.height), MAX_SIZE[1] / min(first.width, first.height))
    fps = Fraction(first.fps or 25.0).limit_denominator(1001)
    if fps > MAX_FPS:
        fps = Fraction(MAX_FPS)
    return ReelFormat(_even(first.width * scale), _even(first.height * scale), fps)


def plan_reel(
    pieces: Sequence[ReelPiece], fade: float, fps: Fraction
) -> tuple[list[RenderedPiece], float, list[int], int]:
    """Snap the ranges and the fade to the frame grid and place them on the output timeline.

    Returns (rendered pieces, fade in seconds, frames per piece, fade frames). Raises
    InputError when a piece is too short for its fades (each side of a piece that
    cross-fades needs the fade, plus one frame of its own).
    """
    if not pieces:
        raise InputError("a reel needs at least one range")
    if not (math.isfinite(fade) and fade >= 0):
        raise InputError(f"fade {fade!r} must be a non-negative number of seconds")
    fade_frames = math.ceil(fade * fps - 1e-9) if len(pieces) > 1 else 0
    frames = [math.floor((p.end - p.start) * fps + 1e-9) for p in pieces]
    out: list[RenderedPiece] = []
    t_frames = 0
    for k, (p, n) in enumerate(zip(pieces, frames)):
        sides = (k > 0) + (k < len(pieces) - 1)
        if n < sides * fade_frames + 1:
            raise InputError(
                f"range {k} ({p.source} {p.start:.3f}-{p.end:.3f} s) is {n} frames, too short for"
                f" {sides} cross-fade(s) of {fade_frames} frames",
                hint="use longer ranges or a shorter --fade",
            )
        if k > 0:
            t_frames -= fade_frames
        start_out = t_frames
        t_frames += n
        out.append(RenderedPiece(p.source, p.start, p.start + float(n / fps), float(start_out / fps),
                                 float(t_frames / fps)))
    return out, float(fade_frames / fps), frames, fade_frames


def _num(x: float | Fraction) -> str:
    return f"{float(x):.6f}"


def render_reel(
    pieces: Sequence[ReelPiece],
    out: str | os.PathLike[str],
    *,
    fade: float = 0.5,
    fmt: ReelFormat | None = None,
    limits: ExportLimits | None = None,
    progress: ProgressFn | None = None,
) -> ReelResult:
    """Render ``pieces`` in order into the MP4 ``out`` (see the module docstring).

    Audio: present when any source has audio (the others contribute silence); absent
    when none has. Raises NotFoundError/MediaError for a source, InputError for a bad
    range (past a source's end, too short for the fades), ExportLimitError over
    ``limits`` and MediaError when FFmpeg fails.
    """
    limits = limits or ExportLimits()
    infos = _probe_sources(pieces)
    fmt = fmt or reel_format_for(infos)
    # Each range starts on the first source frame at or after its start (never
    # earlier, so ranges that touch never overlap), which is where input seeking lands.
    pieces = [ReelPiece(p.source, s, p.end) if (s := next_frame_time(p.source, p.start)) < p.end else p
              for p in pieces]
    placed, fade_s, frames, fade_frames = plan_reel(pieces, fade, fmt.fps)
    total = placed[-1].output_out
    if total > limits.max_duration_s + 1e-6:
        raise ExportLimitError(f"the reel would last {total:.3f} s, over the limit of {limits.max_duration_s} s",
                               hint="ask for a shorter reel or raise the duration limit")
    with_audio = any(i.has_audio for i in infos)
    args, chains = _piece_inputs(pieces, infos, frames, fmt, with_audio)
    vlast, alast = _crossfades(chains, placed, fade_s, fmt.sample_rate, with_audio)
    fps = f"{fmt.fps.numerator}/{fmt.fps.denominator}"
    args += ["-filter_complex", ";".join(chains), "-map", f"[{vlast}]"]
    args += ["-map", f"[{alast}]", "-c:a", "aac", "-b:a", "160k"] if with_audio else ["-an"]
    args += [*FFMPEG_X264, "-r", fps, "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4"]
    out = Path(out)
    size, probed = _render_to(out, args, total, limits, progress, len(pieces))
    return ReelResult(
        path=str(out), pieces=tuple(placed), fade=fade_s, duration=total, probed_duration=float(probed.duration),
        has_audio=with_audio, width=fmt.width, height=fmt.height, fps=float(fmt.fps), size_bytes=size,
    )


def _probe_sources(pieces: Sequence[ReelPiece]) -> list[media.MediaInfo]:
    """Each piece's source probed; InputError for a range past its source's end."""
    infos = [media.probe(p.source) for p in pieces]
    for k, (p, info) in enumerate(zip(pieces, infos)):
        if p.end > info.duration + 1e-3:
            raise InputError(
                f"range {k} ends at {p.end:.3f} s, past the end of {p.source} ({info.duration:.3f} s)",
                hint="pick ranges inside the video",
            )
    return infos


def _piece_inputs(
    pieces: Sequence[ReelPiece], infos: Sequence[media.MediaInfo], frames: Sequence[int], fmt: ReelFormat,
    with_audio: bool,
) -> tuple[list[str], list[str]]:
    """(FFmpeg input arguments, filter chains): piece k becomes the streams [vk] (and
    [ak]) of exactly ``frames[k]`` frames in ``fmt``."""
    fps = f"{fmt.fps.numerator}/{fmt.fps.denominator}"
    sr = fmt.sample_rate
    args: list[str] = []
    chains: list[str] = []
    for k, (p, info, n) in enumerate(zip(pieces, infos, frames)):
        dur = n / fmt.fps
        # A little margin past the end: the fps filter needs the next frame to decide,
        # and trim cuts exactly.
        args += ["-ss", _num(max(0.0, p.start - 1e-3)), "-t", _num(float(dur) + 0.5), "-i", p.source]
        chains.append(
            f"[{k}:v:0]scale={fmt.width}:{fmt.height}:force_original_aspect_ratio=decrease,"
            f"pad={fmt.width}:{fmt.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p,"
            f"setpts=PTS-STARTPTS,tpad=stop_mode=clone:stop_duration={_num(dur)},trim=end_frame={n},"
            f"setpts=PTS-STARTPTS[v{k}]"
        )
        if with_audio:
            samples = round(float(dur) * sr)
            if info.has_audio:
                chains.append(
                    f"[{k}:a:0]aresample={sr},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                    f"asetpts=PTS-STARTPTS,apad,atrim=end_sample={samples}[a{k}]"
                )
            else:
                chains.append(f"anullsrc=r={sr}:cl=stereo,atrim=end_sample={samples}[a{k}]")
    return args, chains


def _crossfades(
    chains: list[str], placed: Sequence[RenderedPiece], fade_s: float, sr: int, with_audio: bool
) -> tuple[str, str]:
    """Append the chains that cross-fade each piece into the next; the last labels."""
    vlast, alast = "v0", "a0"
    fade_samples = round(fade_s * sr)
    for k in range(1, len(placed)):
        offset = placed[k].output_in
        chains.append(f"[{vlast}][v{k}]xfade=transition=fade:duration={_num(fade_s)}:offset={_num(offset)}[vx{k}]")
        vlast = f"vx{k}"
        if with_audio:
            chains.append(f"[{alast}][a{k}]acrossfade=ns={fade_samples}:c1=tri:c2=tri[ax{k}]")
            alast = f"ax{k}"
    return vlast, alast


def _render_to(
    out: Path, args: list[str], total: float, limits: ExportLimits, progress: ProgressFn | None, n_pieces: int
) -> tuple[int, media.MediaInfo]:
    """Run FFmpeg into a temp file beside ``out``, check it, then move it into place:
    (its size, its probe)."""
    if not out.parent.is_dir():
        raise NotFoundError(f"the folder of {out} does not exist", hint="create it first")
    fd, tmp_name = tempfile.mkstemp(prefix=".reel-", suffix=".mp4", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        run_ffmpeg(args, out=tmp, expected_duration=total, max_bytes=limits.max_bytes, progress=progress,
                   stage="render", what=f"the reel of {n_pieces} ranges")
        size = tmp.stat().st_size
        if size > limits.max_bytes:
            raise ExportLimitError(f"the reel is {size} bytes, over the limit of {limits.max_bytes}",
                                   hint="ask for a shorter reel or raise the size limit")
        probed = media.probe(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return size, probed
