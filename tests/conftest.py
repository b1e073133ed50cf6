"""Shared fixtures: the workplace's real clips, synthetic clips, a built index.

Tests that need ``../shared/media`` skip with a reason when it is absent. The e2e
index is built once per session and shared read-only; a test that mutates an index
builds its own.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tests import synth  # noqa: E402

E2E_SPEECH = "Welcome to the cooking show, today we bake a chocolate cake with fresh strawberries."
E2E_TEXT = "GRAND OPENING SALE"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    d = synth.shared_media_dir()
    if d is None:
        pytest.skip("../shared/media is absent (set VIDSEEK_SHARED_MEDIA to the folder of real clips)")
    return d


@pytest.fixture(scope="session")
def tools() -> None:
    missing = synth.require_tools()
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="session")
def visual_image(tmp_path_factory) -> Path:
    """A real photograph with a known ImageNet object: matplotlib's sample of Grace
    Hopper in uniform (classified "military uniform")."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not src.is_file():
        pytest.skip("matplotlib's grace_hopper.jpg sample is missing")
    dst = tmp_path_factory.mktemp("img") / "hopper.jpg"
    shutil.copy(src, dst)
    return dst


@pytest.fixture(scope="session")
def e2e_clips(tmp_path_factory, tools, visual_image) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("e2e_clips")
    clips = {
        "speech": synth.make_speech_clip(d, E2E_SPEECH, name="talk.mp4"),
        "text": synth.make_text_clip(d, E2E_TEXT, name="sign.mp4", size=(640, 360), fontsize=48),
        "cuts": synth.make_cuts_clip(d)[0],
        "silent": synth.make_no_audio_clip(d, name="silent.mp4"),
    }
    still = d / "uniform.mp4"
    synth._ffmpeg("-loop", "1", "-i", str(visual_image), "-t", "3", "-r", "5", "-vf", "scale=320:-2",
                  *synth._X264, *synth._BITEXACT, str(still))
    clips["visual"] = still
    return clips


@pytest.fixture(scope="session")
def e2e_index(tmp_path_factory, e2e_clips) -> Path:
    """A real index (real models) of the synthetic clips; read-only for tests."""
    from indexer.pipeline import index_paths

    idx = tmp_path_factory.mktemp("e2e_index")
    report = index_paths([str(p) for p in e2e_clips.values()], idx)
    assert not report.failed, report.summary()
    return idx
