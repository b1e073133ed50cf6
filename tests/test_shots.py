"""Tests for indexer.shots: cut detection on clips with known cuts, and segmentation invariants."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from indexer.media import frames_at, probe, sample_frames
from indexer.shots import Segment, Shot, detect_cuts, frame_distance, segment
from tests import synth

_skip_reason = synth.require_tools()
needs_tools = pytest.mark.skipif(_skip_reason is not None, reason=_skip_reason or "")

SHARED = synth.shared_media_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="real clips not found: set VIDSEEK_SHARED_MEDIA or provide ../shared/media with MANIFEST.tsv",
)

SAMPLE_FPS = 4.0  # detect_cuts' default sampling rate


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def cuts_clip(clip_dir: Path) -> tuple[Path, list[float]]:
    return synth.make_cuts_clip(clip_dir)


def _assert_cuts_match(found: list[float], truth: list[float], tolerance: float) -> None:
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for f, t in zip(found, truth, strict=True):
        assert abs(f - t) <= tolerance, f"cut at {f:.3f} s, expected {t:.3f} s (found {found})"


# ---------------------------------------------------------------------------
# detect_cuts


@needs_tools
def test_detects_known_hard_cuts(cuts_clip: tuple[Path, list[float]]) -> None:
    path, truth = cuts_clip
    # Within one sample interval; testsrc2's motion and mandelbrot's zoom add no cut.
    _assert_cuts_match(detect_cuts(path), truth, 1.0 / SAMPLE_FPS)


@needs_tools
def test_detects_cuts_at_two_samples_a_second(cuts_clip: tuple[Path, list[float]]) -> None:
    path, truth = cuts_clip
    _assert_cuts_match(detect_cuts(path, fps=2.0), truth, 0.5)


@needs_tools
def test_detects_cuts_at_other_times(clip_dir: Path) -> None:
    shots = (
        synth.ShotSpec("testsrc2", 1.7),
        synth.ShotSpec("color=c=navy", 2.3),
        synth.ShotSpec("mandelbrot", 2.6),
        synth.ShotSpec("rgbtestsrc", 1.4),
    )
    path, truth = synth.make_cuts_clip(clip_dir, shots, name="odd_cuts.mp4")
    assert truth == pytest.approx([1.7, 4.0, 6.6])
    _assert_cuts_match(detect_cuts(path), truth, 1.0 / SAMPLE_FPS)


@needs_tools
def test_a_fade_is_not_a_cut(clip_dir: Path) -> None:
    path, _ = synth.make_cuts_clip(clip_dir, synth.FADE_SHOTS, name="fade.mp4")
    found = detect_cuts(path)
    # The hard cut at 5 s is found; the 2 s fade-in from black (1-3 s) gives at most
    # one boundary, where the picture first appears, and none while it brightens.
    assert [c for c in found if c > 4.0] == pytest.approx(synth.FADE_CUTS, abs=1.0 / SAMPLE_FPS)
    assert all(c <= 1.0 + 1.0 / SAMPLE_FPS for c in found if c < 4.0), found


@needs_tools
def test_detect_cuts_takes_samples_or_a_path(cuts_clip: tuple[Path, list[float]]) -> None:
    path, _ = cuts_clip
    samples = list(sample_frames(path, fps=SAMPLE_FPS))
    assert detect_cuts(samples) == detect_cuts(path)
    gray = [(t, frame.mean(axis=2).astype(np.uint8)) for t, frame in samples]
    _assert_cuts_match(detect_cuts(gray), [3.0, 7.0], 1.0 / SAMPLE_FPS)


@needs_tools
def test_no_cuts_in_a_single_shot(clip_dir: Path) -> None:
    path = synth.make_text_clip(clip_dir)
    assert detect_cuts(path) == []
    assert detect_cuts([]) == []
    assert detect_cuts([(0.0, np.zeros((8, 8, 3), np.uint8))]) == []


def test_a_single_odd_frame_is_not_a_cut() -> None:
    red = np.zeros((24, 32, 3), np.uint8)
    red[..., 0] = 200
    white = np.full((24, 32, 3), 255, np.uint8)
    blue = np.zeros((24, 32, 3), np.uint8)
    blue[..., 2] = 200
    frames = [red] * 8 + [white] + [red] * 8 + [blue] * 8
    samples = [(i * 0.25, f) for i, f in enumerate(frames)]
    # The white flash at 2.0 s returns to red; the switch to blue at 4.25 s stays.
    assert detect_cuts(samples) == pytest.approx([4.125])


def test_frame_distance_range() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert frame_distance(a, a) == 0.0
    red = np.zeros((24, 32, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((24, 32, 3), np.uint8)
    blue[..., 2] = 255
    assert 0.5 < frame_distance(red, blue) <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": -0.1}, {"threshold": 1.5}, {"ratio": 0.5}, {"window": 0}],
)
def test_detect_cuts_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(InputError):
        detect_cuts([], **kwargs)


def test_detect_cuts_rejects_non_rgb_frames() -> None:
    with pytest.raises(InputError, match="not an HxWx3 uint8"):
        detect_cuts([(0.0, np.zeros((4, 4, 3), np.float32)), (0.5, np.zeros((4, 4, 3), np.float32))])


@pytest.mark.shared_media
@needs_shared
@needs_tools
def test_detects_cuts_between_real_clips(tmp_path: Path) -> None:
    # 2 s of each of 8 real clips whose windows hold no cut of their own (checked by
    # eye), c010 being shaky handheld footage: the 7 joins are the only cuts.
    assert SHARED is not None
    names = ["c001.mp4", "c007.mp4", "c010.mp4", "c034.mp4", "c042.mp4", "c055.mp4", "c004.avi", "c016.ogg"]
    inputs: list[str] = []
    chains = ""
    for i, name in enumerate(names):
        inputs += ["-i", str(SHARED / name)]
        chains += (
            f"[{i}:v]fps=25,trim=start=1:duration=2,setpts=PTS-STARTPTS,"
            f"scale=320:240,setsar=1,format=yuv420p[v{i}];"
        )
    concat = "".join(f"[v{i}]" for i in range(len(names))) + f"concat=n={len(names)}:v=1:a=0[out]"
    path = tmp_path / "splice.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", *inputs, "-filter_complex", chains + concat, "-map", "[out]",
         "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-g", "50", str(path)],
        check=True,
        capture_output=True,
    )
    _assert_cuts_match(detect_cuts(path), [2.0 * k for k in range(1, len(names))], 1.0 / SAMPLE_FPS)


@pytest.mark.shared_media
@needs_shared
def test_no_cuts_in_a_static_camera_clip() -> None:
    assert SHARED is not None
    assert detect_cuts(SHARED / "c004.avi") == []  # 79 s of pedestrians, fixed camera


# ---------------------------------------------------------------------------
# segment


def test_segment_example() -> None:
    shots, segments = segment(30.0, [3.0, 7.0, 7.5, 29.0])
    # 7.0-7.5 (0.5 s) merges into its shorter neighbour (3-7, 4 s, not 7.5-29);
    # 29-30 (1 s, last) merges into the previous shot.
    assert shots == [Shot(0, 0.0, 3.0), Shot(1, 3.0, 7.5), Shot(2, 7.5, 30.0)]
    # 22.5 s splits into 3 windows of 7.5 s.
    assert [(s.start, s.end, s.shot_index) for s in segments] == [
        (0.0, 3.0, 0),
        (3.0, 7.5, 1),
        (7.5, 15.0, 2),
        (15.0, 22.5, 2),
        (22.5, 30.0, 2),
    ]
    assert segments[0].keyframe_times == (1.5,)
    assert segments[1].keyframe_times == pytest.approx((4.125, 6.375))
    assert segments[2].keyframe_times == pytest.approx((9.375, 13.125))
    assert [s.index for s in segments] == [0, 1, 2, 3, 4]


def test_segment_without_cuts_and_short_videos() -> None:
    shots, segments = segment(4.0, [])
    assert shots == [Shot(0, 0.0, 4.0)]
    assert segments == [Segment(0, 0.0, 4.0, 0, (2.0,))]
    # Shorter than min_len: one shot, one segment, cuts notwithstanding.
    shots, segments = segment(1.0, [0.3, 0.6])
    assert shots == [Shot(0, 0.0, 1.0)] and len(segments) == 1


def test_segment_ignores_cuts_outside_the_video() -> None:
    shots, _ = segment(10.0, [-1.0, 0.0, 5.0, 5.0, 10.0, 10.2])
    assert [(s.start, s.end) for s in shots] == [(0.0, 5.0), (5.0, 10.0)]


@pytest.mark.parametrize(
    ("duration", "cuts", "kwargs"),
    [
        (0.0, [], {}),
        (-5.0, [], {}),
        (float("nan"), [], {}),
        (10.0, [float("nan")], {}),
        (10.0, [], {"min_len": 0.0}),
        (10.0, [], {"max_len": 2.0, "min_len": 1.5}),
        (10.0, [], {"keyframe_spacing": 0.0}),
    ],
)
def test_segment_rejects_bad_input(duration: float, cuts: list[float], kwargs: dict) -> None:
    with pytest.raises(InputError):
        segment(duration, cuts, **kwargs)


@st.composite
def _videos(draw: st.DrawFn) -> tuple[float, list[float], float, float]:
    duration = draw(st.floats(min_value=0.05, max_value=600.0, allow_nan=False))
    cuts = draw(st.lists(st.floats(min_value=-5.0, max_value=duration + 5.0, allow_nan=False), max_size=60))
    min_len = draw(st.floats(min_value=0.1, max_value=5.0))
    max_len = draw(st.floats(min_value=2 * min_len, max_value=60.0))
    return duration, cuts, max_len, min_len


@settings(max_examples=300, deadline=None)
@given(_videos())
def test_segment_invariants(video: tuple[float, list[float], float, float]) -> None:
    duration, cuts, max_len, min_len = video
    shots, segments = segment(duration, cuts, max_len=max_len, min_len=min_len)
    eps = 1e-9 * max(1.0, duration)

    for units in (shots, segments):
        # Cover [0, duration] exactly, in order, without gaps or overlaps.
        assert units[0].start == 0.0
        assert units[-1].end == duration
        assert all(a.end == b.start for a, b in zip(units, units[1:]))
        assert all(u.end > u.start for u in units)
        assert [u.index for u in units] == list(range(len(units)))

    # Shot boundaries are input cuts: merging removes cuts, never invents them.
    assert {s.start for s in shots[1:]} <= set(cuts)
    if duration >= min_len:
        assert all(s.duration >= min_len - eps for s in shots)
        assert all(s.duration >= min_len - eps for s in segments)
    else:
        assert len(shots) == 1 and len(segments) == 1
    assert all(s.duration <= max_len + eps for s in segments)

    for shot in shots:
        parts = [s for s in segments if s.shot_index == shot.index]
        # Each shot is split into as few windows as max_len allows, all equal.
        assert len(parts) == max(1, math.ceil(shot.duration / max_len - 1e-9))
        assert parts[0].start == shot.start and parts[-1].end == shot.end
        assert max(p.duration for p in parts) - min(p.duration for p in parts) <= eps

    for seg in segments:
        assert 1 <= len(seg.keyframe_times) <= 3
        assert list(seg.keyframe_times) == sorted(seg.keyframe_times)
        assert all(seg.start < k < seg.end for k in seg.keyframe_times)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1.5, max_value=9.0), min_size=1, max_size=20))
def test_segment_keeps_every_cut_when_shots_are_long_enough(lengths: list[float]) -> None:
    bounds = np.cumsum([0.0, *lengths]).tolist()
    # min_len a little under the shortest length: cumsum's rounding must not merge.
    shots, segments = segment(bounds[-1], bounds[1:-1], max_len=10.0, min_len=1.49)
    assert [s.start for s in shots] == bounds[:-1]
    assert len(segments) == len(shots)  # no shot exceeds max_len


@needs_tools
def test_cuts_to_segments_to_keyframes(cuts_clip: tuple[Path, list[float]]) -> None:
    path, _ = cuts_clip
    info = probe(path)
    shots, segments = segment(info.duration, detect_cuts(path))
    assert len(shots) == 3
    first, *_ = segments
    (_, frame), = frames_at(path, first.keyframe_times[:1], size=64)
    r, g, b = frame.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 30 and b < 30  # the red shot's keyframe is red
