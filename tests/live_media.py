"""Synthetic live streams for the live-ingest tests: an MPEG-TS whose content is known
(shots with hard cuts, on-screen text, espeak-ng sentences at given times), and the
writers that replay it as a growing file or an HLS playlist (``indexer.live.replay``).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence

from tests import synth

__all__ = ["make_stream", "SENTENCES", "LATE_SENTENCES", "words_of"]

# (start second, sentence): the second one is spoken across the 8 s window seam of the tests
SENTENCES: tuple[tuple[float, str], ...] = (
    (1.0, "The red boat leaves the harbour at seven in the evening."),
    (6.5, "Fresh bread and warm soup are served on the upper deck."),
    (14.0, "Passengers should keep their tickets until the journey ends."),
)
# for the slow test: a sentence spoken in the second minute
LATE_SENTENCES: tuple[tuple[float, str], ...] = (
    (3.0, "The red boat leaves the harbour at seven in the evening."),
    (40.0, "Fresh bread and warm soup are served on the upper deck."),
    (78.0, "A purple giraffe played the violin beside the lighthouse."),
)
_COLOURS = ("red", "navy", "darkgreen", "purple", "orange", "teal", "maroon", "olive")


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation (how the tests compare transcripts)."""
    return [w for w in "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split() if w]


def make_stream(out_dir: Path, *, seconds: float = 20.0, shot: float = 5.0,
                sentences: Sequence[tuple[float, str]] = SENTENCES, text: str | None = "HARBOUR 42",
                size: tuple[int, int] = (320, 180), name: str = "stream.ts") -> Path:
    """An MPEG-TS of ``seconds``: coloured shots of ``shot`` seconds (hard cuts) with
    ``text`` drawn on them, and each sentence spoken (espeak-ng) from its start second;
    H.264 with a keyframe every second, AAC."""
    out_dir = Path(out_dir)
    wavs = []
    for i, (_, sentence) in enumerate(sentences):
        wav = out_dir / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), sentence], check=True,
                       capture_output=True)
        wavs.append(wav)
    n = int(seconds // shot + (1 if seconds % shot else 0))
    video = "".join(f"color=c={_COLOURS[i % len(_COLOURS)]}:s={size[0]}x{size[1]}:r=25:d={shot}[c{i}];"
                    for i in range(n))
    video += "".join(f"[c{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0,trim=duration={seconds}"
    if text:
        video += (f",drawtext=fontfile={synth.FONT}:text='{text}':fontsize={size[1] // 6}:fontcolor=white"
                  f":x=(w-tw)/2:y=h/3")
    video += ",format=yuv420p[v]"
    inputs = []
    audio = ""
    for i, ((start, _), wav) in enumerate(zip(sentences, wavs)):
        inputs += ["-i", str(wav)]
        ms = int(start * 1000)
        audio += f"[{i}:a]aresample=44100,adelay={ms}|{ms}[a{i}];"
    k = len(wavs)
    audio += f"anullsrc=r=44100:cl=mono,atrim=duration={seconds}[sil];"
    audio += "[sil]" + "".join(f"[a{i}]" for i in range(k)) + \
        f"amix=inputs={k + 1}:normalize=0:duration=first,atrim=duration={seconds}[a]"
    path = out_dir / name
    synth._ffmpeg(*inputs, "-filter_complex", f"{video};{audio}", "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast",
                  "-threads", "1", "-g", "25", "-x264-params", "scenecut=0", "-c:a", "aac", "-b:a", "64k",
                  "-ac", "1", "-f", "mpegts", str(path))
    return path
