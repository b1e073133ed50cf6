"""Synthetic media for tests: tiny clips with known content, made by FFmpeg and espeak-ng.

Every ``make_*`` function takes an output folder, writes one file there and returns its
path (``make_cuts_clip`` also returns the cut times). The clips are small (low
resolution, a few seconds) so a test can make them in well under a second, and their
content is known exactly: the cuts clip changes scene at given times, the speech clip
says a given sentence, the text clip shows a given string.

FFmpeg runs with ``-flags +bitexact -fflags +bitexact`` and libx264 with one thread, so
the same call makes the same bytes (libx264's output depends on its thread count).
Random bytes (``make_corrupt``) come from a seeded generator.

``shared_media_dir()`` finds the workplace's folder of real clips (``../shared/media``
or ``$VIDSEEK_SHARED_MEDIA``) for the tests marked ``shared_media``.
"""
from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = [
    "FONT",
    "SPEECH_TEXT",
    "ON_SCREEN_TEXT",
    "DEFAULT_SHOTS",
    "FADE_SHOTS",
    "FADE_CUTS",
    "ShotSpec",
    "require_tools",
    "shared_media_dir",
    "make_cuts_clip",
    "make_speech_clip",
    "wav_seconds",
    "make_text_clip",
    "make_no_audio_clip",
    "make_audio_only",
    "make_rotated_clip",
    "make_vfr_clip",
    "make_1x1_clip",
    "make_zero_byte",
    "make_not_video",
    "make_still_image",
    "make_corrupt",
    "make_no_duration",
    "make_zero_duration",
]

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SPEECH_TEXT = "The red boat leaves the harbour at seven in the evening."
ON_SCREEN_TEXT = "HARBOUR 42"

# These flags keep FFmpeg's version string and the creation time out of the file;
# libx264 is deterministic with a fixed thread count.
_BITEXACT = ["-flags", "+bitexact", "-fflags", "+bitexact"]
_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class ShotSpec:
    """One shot of a synthetic cuts clip: an FFmpeg lavfi source, its length in seconds,
    and optional filters applied to it (e.g. ``"fade=t=in:st=0:d=2"``)."""

    source: str
    seconds: float
    filters: str = ""


# Hard cuts at 3 s and 7 s. testsrc2 moves and mandelbrot zooms inside their shots,
# so a detector that fires on motion would report extra cuts.
DEFAULT_SHOTS: tuple[ShotSpec, ...] = (
    ShotSpec("color=c=red", 3.0),
    ShotSpec("testsrc2", 4.0),
    ShotSpec("mandelbrot", 3.0),
)


# A fade-in from black right after a black shot (no visible cut at 1 s: the fade
# starts from black), a 2 s fade, then one hard cut at 5 s.
FADE_SHOTS: tuple[ShotSpec, ...] = (
    ShotSpec("color=c=black", 1.0),
    ShotSpec("testsrc2", 4.0, filters="fade=t=in:st=0:d=2"),
    ShotSpec("mandelbrot", 3.0),
)
FADE_CUTS = [5.0]


def require_tools() -> str | None:
    """Return a reason to skip when ffmpeg or espeak-ng is missing, else None."""
    missing = [tool for tool in ("ffmpeg", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        return f"synthetic media needs {', '.join(missing)} on PATH (apt-get install {' '.join(missing)})"
    return None


def shared_media_dir() -> Path | None:
    """The folder of real clips: ``$VIDSEEK_SHARED_MEDIA``, else ``<repo>/../shared/media``.

    Returns None when neither exists (tests then skip with a reason).
    """
    env = os.environ.get("VIDSEEK_SHARED_MEDIA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "media")
    for candidate in candidates:
        if (candidate / "MANIFEST.tsv").is_file():
            return candidate
    return None


def _run(cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(cmd, check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        # The exit status alone says nothing; FFmpeg's own message does.
        stderr = e.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{cmd[0]} failed ({e.returncode}): {stderr}\ncommand: {cmd}") from e


def _ffmpeg(*args: str) -> None:
    _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args])


def _lavfi(source: str, size: tuple[int, int], fps: int, seconds: float) -> list[str]:
    # -t on the input instead of a d= option: not every source (mandelbrot) has one.
    sep = ":" if "=" in source else "="
    return ["-t", str(seconds), "-f", "lavfi", "-i", f"{source}{sep}s={size[0]}x{size[1]}:r={fps}"]


def make_cuts_clip(
    out_dir: Path,
    shots: tuple[ShotSpec, ...] = DEFAULT_SHOTS,
    *,
    size: tuple[int, int] = (160, 120),
    fps: int = 25,
    gop: int = 25,
    name: str = "cuts.mp4",
) -> tuple[Path, list[float]]:
    """Concatenate lavfi sources with hard cuts; return the path and the cut times (s).

    With the defaults: 0-3 s red, 3-7 s testsrc2, 7-10 s mandelbrot, cuts at [3.0, 7.0].
    ``gop`` fixes the keyframe interval (in frames) and x264's scene-cut keyframes are
    off, so keyframes do not line up with the cuts and seeking is exercised.
    """
    inputs: list[str] = []
    for shot in shots:
        # Every source is scaled to one size and format so that concat accepts them.
        inputs += _lavfi(shot.source, size, fps, shot.seconds)
    chains = "".join(
        f"[{i}:v]{shot.filters + ',' if shot.filters else ''}scale={size[0]}:{size[1]},format=yuv420p,setsar=1[v{i}];"
        for i, shot in enumerate(shots)
    )
    concat = "".join(f"[v{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0[out]"
    path = Path(out_dir) / name
    _ffmpeg(
        *inputs,
        "-filter_complex", chains + concat,
        "-map", "[out]",
        *_X264,
        "-g", str(gop),
        "-x264-params", "scenecut=0",
        *_BITEXACT,
        str(path),
    )
    cuts: list[float] = []
    t = 0.0
    for shot in shots[:-1]:
        t += shot.seconds
        cuts.append(round(t, 6))
    return path, cuts


def make_speech_clip(
    out_dir: Path,
    text: str = SPEECH_TEXT,
    *,
    voice: str = "en-us",
    audio_delay: float = 0.0,
    name: str = "speech.mp4",
) -> Path:
    """A still blue picture with espeak-ng speaking ``text``; mp4, h264 + aac.

    ``audio_delay`` starts the audio track that many seconds after the video (the
    speech's own wav is kept beside the clip as ``<name>.wav``).
    """
    out_dir = Path(out_dir)
    wav = out_dir / (Path(name).stem + ".wav")
    _run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text])
    path = out_dir / name
    _ffmpeg(
        "-f", "lavfi", "-i", f"color=c=blue:s=160x120:r=10:d={audio_delay + wav_seconds(wav) + 0.2:.2f}",
        "-itsoffset", str(audio_delay),
        "-i", str(wav),
        *_X264,
        "-c:a", "aac", "-b:a", "64k",
        *_BITEXACT,
        str(path),
    )
    return path


def wav_seconds(path: Path) -> float:
    """Length of a wav file in seconds."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def _filter_path(path: Path) -> str:
    # Inside a filter graph ':' separates options and '\' escapes; quote both.
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


def make_text_clip(
    out_dir: Path,
    text: str = ON_SCREEN_TEXT,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (480, 160),
    fontsize: int = 64,
    name: str = "text.mp4",
) -> Path:
    """Burned-in ``text`` (DejaVuSans, large, black on white), centred; no audio."""
    out_dir = Path(out_dir)
    # textfile= avoids escaping the text itself for the filter parser.
    text_file = out_dir / (Path(name).stem + ".txt")
    text_file.write_text(text, encoding="utf-8")
    draw = (
        f"drawtext=fontfile={_filter_path(FONT)}:textfile={_filter_path(text_file)}"
        f":fontsize={fontsize}:fontcolor=black:x=(w-text_w)/2:y=(h-text_h)/2"
    )
    path = out_dir / name
    _ffmpeg(
        *_lavfi("color=c=white", size, 10, seconds),
        "-vf", draw,
        *_X264,
        *_BITEXACT,
        str(path),
    )
    return path


def make_captions_clip(
    out_dir: Path,
    captions: Sequence[tuple[str, float, float]],
    *,
    seconds: float = 6.0,
    fontsize: int = 40,
    box: bool = False,
    name: str = "captions.mp4",
) -> Path:
    """Moving test pattern (480x270, 10 fps) with each ``(text, start, end)`` caption
    burned in, white and centred near the bottom as subtitles are, while it is shown;
    ``box`` puts a black box behind the letters. No audio."""
    out_dir = Path(out_dir)
    draws = []
    for i, (text, a, b) in enumerate(captions):
        text_file = out_dir / f"{Path(name).stem}.{i}.txt"  # textfile= avoids escaping the text
        text_file.write_text(text, encoding="utf-8")
        draws.append(f"drawtext=fontfile={_filter_path(FONT)}:textfile={_filter_path(text_file)}"
                     f":fontsize={fontsize}:fontcolor=white{':box=1:boxcolor=black' if box else ''}"
                     f":x=(w-text_w)/2:y=h-2*text_h:enable='between(t,{a},{b})'")
    path = out_dir / name
    _ffmpeg(*_lavfi("testsrc2", (480, 270), 10, seconds), "-vf", ",".join(draws), *_X264, *_BITEXACT, str(path))
    return path


def make_no_audio_clip(out_dir: Path, *, seconds: float = 2.0, name: str = "noaudio.mp4") -> Path:
    """testsrc2, h264, no audio track."""
    path = Path(out_dir) / name
    _ffmpeg(*_lavfi("testsrc2", (96, 64), 10, seconds), *_X264, *_BITEXACT, str(path))
    return path


def make_audio_only(out_dir: Path, *, seconds: float = 1.0, name: str = "tone.m4a") -> Path:
    """A sine tone in an mp4 container with no video stream."""
    path = Path(out_dir) / name
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:d={seconds}", "-c:a", "aac", *_BITEXACT, str(path))
    return path


def make_rotated_clip(out_dir: Path, degrees: int = 90, *, name: str | None = None) -> Path:
    """A 64x32 black clip with a red box in its stored top-left corner and rotate metadata.

    FFmpeg 5.1's ``-metadata:s:v rotate=N`` writes a display matrix; players show the
    picture turned so that the box lands elsewhere (for 90: the bottom-left corner of
    a 32x64 picture, as ``ffmpeg`` itself renders it with autorotate).
    """
    out_dir = Path(out_dir)
    plain = out_dir / f"plain{degrees}.mp4"
    _ffmpeg(
        *_lavfi("color=c=black", (64, 32), 10, 1.0),
        "-vf", "drawbox=x=0:y=0:w=16:h=8:color=red:t=fill",
        *_X264,
        *_BITEXACT,
        str(plain),
    )
    path = out_dir / (name or f"rotated{degrees}.mp4")
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v", f"rotate={degrees}", *_BITEXACT, str(path))
    plain.unlink()
    return path


def make_vfr_clip(out_dir: Path, *, name: str = "vfr.mkv") -> Path:
    """Variable frame rate: 2 s at 25 fps (red), then 10 frames 0.2 s apart (blue); 60 frames.

    The header's frame rate (25) comes from the first frames; the true average is lower.
    """
    path = Path(out_dir) / name
    # Frames 0-49 keep 25 fps timing; from frame 50 on each frame lasts 0.2 s.
    setpts = "setpts='if(lt(N,50),N/25,2+(N-50)/5)/TB'"
    _ffmpeg(
        *_lavfi("color=c=red", (64, 48), 25, 2.0),
        *_lavfi("color=c=blue", (64, 48), 25, 0.4),
        "-filter_complex", f"[0:v][1:v]concat=n=2:v=1:a=0,{setpts}[out]",
        "-map", "[out]",
        "-fps_mode", "passthrough",
        *_X264,
        *_BITEXACT,
        str(path),
    )
    return path


def make_1x1_clip(out_dir: Path, *, name: str = "one_pixel.mp4") -> Path:
    """A 1x1 pixel, 2 s, 10 fps h264 clip (yuv444p: 4:2:0 needs even sizes)."""
    path = Path(out_dir) / name
    _ffmpeg(
        *_lavfi("color=c=red", (16, 16), 10, 2.0),
        "-vf", "scale=1:1",
        "-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv444p",
        *_BITEXACT,
        str(path),
    )
    return path


def make_zero_byte(out_dir: Path, *, name: str = "empty.mp4") -> Path:
    """An empty file with a video extension."""
    path = Path(out_dir) / name
    path.write_bytes(b"")
    return path


def make_not_video(out_dir: Path, *, name: str = "notes.mp4") -> Path:
    """A plain text file named like a video."""
    path = Path(out_dir) / name
    path.write_text("This is a shopping list, not a video.\nmilk\neggs\n" * 20, encoding="utf-8")
    return path


def make_still_image(out_dir: Path, *, name: str = "still.png") -> Path:
    """A single PNG picture (FFmpeg opens it as a one-frame 'video')."""
    path = Path(out_dir) / name
    _ffmpeg(*_lavfi("testsrc2", (64, 48), 1, 1.0), "-frames:v", "1", "-f", "image2", *_BITEXACT, str(path))
    return path


def _mp4_box(data: bytes, box: bytes) -> tuple[int, int]:
    """Offset and size of a top-level ISO-BMFF box (e.g. b'mdat')."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        if kind == box:
            return offset, size
        offset += size
    raise ValueError(f"no top-level {box!r} box")


def make_corrupt(out_dir: Path, kind: str = "truncate", *, seed: int = 7) -> Path:
    """A broken mp4 made from a real one (testsrc2, 2 s).

    kind:
      - ``"truncate"``: the file cut to its first 40%; the index (moov, written last)
        is gone, so nothing can be opened.
      - ``"scramble"``: moov first (+faststart) and every byte of the media data
        replaced with seeded random bytes: the header parses, no frame decodes.
      - ``"partial"``: as scramble but only the second half of the media data, so the
        first second decodes and the rest is garbage.
    """
    out_dir = Path(out_dir)
    source = out_dir / f"corrupt_source_{kind}.mp4"
    movflags = [] if kind == "truncate" else ["-movflags", "+faststart"]
    _ffmpeg(*_lavfi("testsrc2", (96, 64), 10, 2.0), *_X264, "-g", "10", *movflags, *_BITEXACT, str(source))
    data = bytearray(source.read_bytes())
    source.unlink()
    rng = random.Random(seed)
    if kind == "truncate":
        data = data[: int(len(data) * 0.4)]
    elif kind in ("scramble", "partial"):
        offset, size = _mp4_box(bytes(data), b"mdat")
        start, end = offset + 8, offset + size
        if kind == "partial":
            start = (start + end) // 2
        data[start:end] = bytes(rng.getrandbits(8) for _ in range(end - start))
    else:
        raise ValueError(f"unknown corruption kind {kind!r}; use truncate, scramble or partial")
    path = out_dir / f"corrupt_{kind}.mp4"
    path.write_bytes(bytes(data))
    return path


def make_no_duration(out_dir: Path, kind: str = "h264", *, seconds: float = 2.0) -> Path:
    """A clip whose container states no duration (testsrc2, 10 fps, ``seconds`` long).

    kind:
      - ``"h264"``: a raw H.264 elementary stream (no container, no timestamps).
      - ``"mkv"``: Matroska written to a pipe, so the muxer could not seek back to
        write the duration or the cue index.
    """
    out_dir = Path(out_dir)
    common = [*_lavfi("testsrc2", (96, 64), 10, seconds), *_X264, "-g", "10", *_BITEXACT]
    if kind == "h264":
        path = out_dir / "raw.h264"
        _ffmpeg(*common, "-f", "h264", str(path))
    elif kind == "mkv":
        path = out_dir / "piped.mkv"
        proc = _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *common, "-f", "matroska", "pipe:1"])
        path.write_bytes(proc.stdout)
    else:
        raise ValueError(f"unknown kind {kind!r}; use h264 or mkv")
    return path


def make_zero_duration(out_dir: Path, *, name: str = "zero.mkv") -> Path:
    """A recording stopped at once: Matroska with a video track header and no frames."""
    path = Path(out_dir) / name
    _ffmpeg(*_lavfi("testsrc2", (64, 48), 10, 1.0), "-t", "0", *_X264, *_BITEXACT, str(path))
    return path
