"""Tests for indexer.media: probe, frames_at, sample_frames, load_audio, on synthetic and real clips."""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests import synth
from engine.errors import InputError, MediaError, NotFoundError
from indexer import media
from indexer.media import MIN_VIDEO_SIDE, frames_at, has_audio, load_audio, load_image, probe, sample_frames

_skip_reason = synth.require_tools()
pytestmark = pytest.mark.skipif(_skip_reason is not None, reason=_skip_reason or "")

SHARED = synth.shared_media_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="real clips not found: set VIDSEEK_SHARED_MEDIA or provide ../shared/media with MANIFEST.tsv",
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every synthetic clip these tests use, made once per module."""
    d = tmp_path_factory.mktemp("media")
    cuts, _ = synth.make_cuts_clip(d)
    out = {
        "cuts": cuts,
        "speech": synth.make_speech_clip(d),
        "speech_late": synth.make_speech_clip(d, audio_delay=1.0, name="speech_late.mp4"),
        "noaudio": synth.make_no_audio_clip(d),
        "vfr": synth.make_vfr_clip(d),
        "raw_h264": synth.make_no_duration(d, "h264"),
        "piped_mkv": synth.make_no_duration(d, "mkv"),
        "one_pixel": synth.make_1x1_clip(d),
        "partial": synth.make_corrupt(d, "partial"),
    }
    for degrees in (90, 180, 270):
        out[f"rot{degrees}"] = synth.make_rotated_clip(d, degrees)
    return out


def _decode_all(path: Path, size: int) -> list[tuple[float, np.ndarray]]:
    """Reference: every frame in order, decoded straight through with plain PyAV."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        origin = c.start_time / av.time_base if c.start_time is not None else 0.0
        out = []
        for packet in c.demux(v):
            if packet.size == 0 and packet.pts is not None:
                continue  # "repeat previous frame" marker (Theora, AVI)
            for frame in packet.decode():
                out.append((frame.time - origin, media._to_array(frame, size)))
    return out


def _on_screen(reference: list[tuple[float, np.ndarray]], t: float) -> tuple[float, np.ndarray]:
    shown = reference[0]
    for ft, arr in reference:
        if ft <= t + 1e-3:
            shown = (ft, arr)
        else:
            break
    return shown


# ---------------------------------------------------------------------------
# probe


def test_probe_reads_synthetic_clip(clips: dict[str, Path]) -> None:
    info = probe(clips["cuts"])
    assert info.path == str(clips["cuts"])
    assert info.size_bytes == clips["cuts"].stat().st_size
    assert "mp4" in info.container
    assert info.duration == pytest.approx(10.0, abs=0.05)
    assert info.duration_source == "container"
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == 250
    assert info.video_codec == "h264"
    assert not info.has_audio
    assert (info.audio_codec, info.sample_rate, info.channels) == (None, None, None)
    assert info.start_time == 0.0


def test_probe_reads_audio_fields(clips: dict[str, Path]) -> None:
    info = probe(clips["speech"])
    assert info.has_audio
    assert info.audio_codec == "aac"
    assert info.sample_rate == 22050  # espeak-ng's rate, kept by the aac encoder
    assert info.channels == 1


@pytest.mark.parametrize("kind", ["raw_h264", "piped_mkv"])
def test_probe_estimates_missing_duration_from_packets(clips: dict[str, Path], kind: str) -> None:
    info = probe(clips[kind])
    assert info.duration_source == "packets"
    assert info.duration == pytest.approx(2.0, abs=0.01)
    assert info.frame_count == 20
    # Raw H.264's header rate is the demuxer's default of 25; counting gives the truth.
    assert info.fps == pytest.approx(10.0, abs=0.01)


def test_probe_gives_true_average_fps_for_variable_frame_rate(clips: dict[str, Path]) -> None:
    info = probe(clips["vfr"])
    assert info.frame_count == 60
    assert info.fps == pytest.approx(60 / info.duration)
    assert info.fps < 20  # the header says 25, from the first frames only


def test_probe_checks_content_not_extension(clips: dict[str, Path], tmp_path: Path) -> None:
    disguised = tmp_path / "holiday.txt"
    shutil.copy(clips["cuts"], disguised)
    assert probe(disguised).duration == pytest.approx(10.0, abs=0.05)


@pytest.mark.parametrize(
    ("maker", "error", "reason"),
    [
        (lambda d: d / "missing.mp4", NotFoundError, "no such file"),
        (lambda d: d, MediaError, "directory"),
        (synth.make_zero_byte, MediaError, "empty"),
        (synth.make_not_video, MediaError, "not a media file"),
        (synth.make_still_image, MediaError, "still image"),
        (lambda d: synth.make_corrupt(d, "truncate"), MediaError, "header is damaged"),
        (lambda d: synth.make_corrupt(d, "scramble"), MediaError, "could be decoded"),
        (synth.make_audio_only, MediaError, "no video stream"),
        (synth.make_1x1_clip, MediaError, "degenerate"),
        (synth.make_zero_duration, MediaError, "zero duration"),
    ],
    ids=[
        "missing", "directory", "zero_byte", "text", "png",
        "truncated", "scrambled", "audio_only", "1x1", "zero_duration",
    ],
)
def test_probe_rejects_bad_input_naming_the_path(tmp_path: Path, maker, error: type, reason: str) -> None:
    path = maker(tmp_path)
    with pytest.raises(error) as excinfo:
        probe(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert reason in message
    assert excinfo.value.hint  # every rejection says what to do


def test_1x1_threshold_is_documented_constant(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match=f"minimum is {MIN_VIDEO_SIDE}"):
        probe(clips["one_pixel"])


def test_1x1_clip_decodes_without_crashing(clips: dict[str, Path]) -> None:
    frames = list(frames_at(clips["one_pixel"], [0.0, 1.0], size=64))
    assert [f.shape for _, f in frames] == [(1, 1, 3), (1, 1, 3)]
    samples = list(sample_frames(clips["one_pixel"], fps=2.0))
    assert len(samples) == 4
    assert all(f.shape == (1, 1, 3) for _, f in samples)


@pytest.mark.parametrize("fn", [lambda p: frames_at(p, [0.0]), sample_frames, load_audio, has_audio])
def test_every_entry_point_rejects_missing_and_empty_files_at_the_call(tmp_path: Path, fn) -> None:
    with pytest.raises(NotFoundError, match="missing.mp4"):
        fn(tmp_path / "missing.mp4")
    empty = synth.make_zero_byte(tmp_path)
    with pytest.raises(MediaError, match="empty"):
        fn(empty)


# ---------------------------------------------------------------------------
# frames_at


def test_frames_at_shows_the_right_shot(clips: dict[str, Path]) -> None:
    # Shots: 0-3 s red, 3-7 s testsrc2, 7-10 s mandelbrot. Times out of order on purpose.
    got = list(frames_at(clips["cuts"], [8.0, 1.0, 5.0, 2.9]))
    times = [t for t, _ in got]
    assert times == pytest.approx([8.0, 1.0, 5.0, 2.88], abs=1e-6)
    red = got[1][1].reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 30 and red[2] < 30
    late_red = got[3][1].reshape(-1, 3).mean(axis=0)
    assert late_red[0] > 200 and late_red[1] < 30
    for _, frame in (got[0], got[2]):
        assert frame.reshape(-1, 3).mean(axis=0)[1] > 60  # not red
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for _, f in got)


def test_frames_at_matches_straight_decode(clips: dict[str, Path]) -> None:
    reference = _decode_all(clips["cuts"], size=48)
    wanted = [0.0, 0.5, 9.99, 3.01, 2.99, 7.3, 6.97, 4.2, 4.3, 100.0]
    for want, (t, frame) in zip(wanted, frames_at(clips["cuts"], wanted, size=48), strict=True):
        expected_t, expected = _on_screen(reference, want)
        assert t == pytest.approx(expected_t, abs=1e-9)
        assert np.array_equal(frame, expected)


def test_frames_at_past_end_gives_last_frame(clips: dict[str, Path]) -> None:
    (t, _), = frames_at(clips["cuts"], [50.0])
    assert t == pytest.approx(9.96)


def test_frames_at_resizes_longest_side(clips: dict[str, Path]) -> None:
    (_, frame), = frames_at(clips["cuts"], [1.0], size=80)
    assert frame.shape == (60, 80, 3)
    (_, frame), = frames_at(clips["cuts"], [1.0], size=1000)  # never enlarges
    assert frame.shape == (120, 160, 3)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "soon"])
def test_frames_at_rejects_bad_times(clips: dict[str, Path], bad) -> None:
    with pytest.raises(InputError):
        list(frames_at(clips["cuts"], [1.0, bad]))


@pytest.mark.parametrize("kind", ["piped_mkv", "vfr"])
def test_frames_at_without_duration_or_constant_rate(clips: dict[str, Path], kind: str) -> None:
    reference = _decode_all(clips[kind], size=32)
    wanted = [1.05, 0.3, 3.1, 1.95, 0.0, 5.0]
    for want, (t, frame) in zip(wanted, frames_at(clips[kind], wanted, size=32), strict=True):
        expected_t, expected = _on_screen(reference, want)
        assert t == pytest.approx(expected_t)
        assert np.array_equal(frame, expected)


def test_frames_at_in_stream_without_timestamps(clips: dict[str, Path]) -> None:
    # Raw H.264 has no timestamps: times come from the parser's frame durations (0.1 s).
    wanted = [1.05, 0.3, 1.95, 0.0, 5.0]
    got = [t for t, _ in frames_at(clips["raw_h264"], wanted)]
    assert got == pytest.approx([1.0, 0.3, 1.9, 0.0, 1.9])


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_frames_at_applies_rotation_like_ffmpeg(clips: dict[str, Path], degrees: int) -> None:
    path = clips[f"rot{degrees}"]
    info = probe(path)
    assert info.rotation == degrees
    assert (info.width, info.height) == ((32, 64) if degrees in (90, 270) else (64, 32))
    (_, frame), = frames_at(path, [0.5])
    assert frame.shape == (info.height, info.width, 3)
    # ffmpeg's own autorotate is the reference for how a player shows the file.
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    expected = np.frombuffer(raw, dtype=np.uint8).reshape(info.height, info.width, 3)
    red_got = frame[..., 0] > 128
    red_expected = expected[..., 0] > 128
    assert red_expected.sum() > 50
    assert (red_got == red_expected).mean() > 0.98


def test_damaged_middle_still_gives_the_intact_frames(clips: dict[str, Path]) -> None:
    # The second half of the media data is random bytes: the first second decodes.
    samples = list(sample_frames(clips["partial"], fps=2.0))
    assert samples and samples[0][0] == 0.0
    (t, frame), = frames_at(clips["partial"], [0.3])
    assert t == pytest.approx(0.3)
    assert frame.shape == (64, 96, 3)


# ---------------------------------------------------------------------------
# sample_frames


def test_sample_frames_hits_each_interval(clips: dict[str, Path]) -> None:
    samples = list(sample_frames(clips["cuts"], fps=2.0, max_side=80, skip_nonref=False))
    assert len(samples) == 20
    for k, (t, frame) in enumerate(samples):
        assert k * 0.5 - 1e-6 <= t < k * 0.5 + 0.04 + 1e-6  # first frame at or after k/2 s
        assert frame.shape == (60, 80, 3)


def test_sample_frames_matches_straight_decode(clips: dict[str, Path]) -> None:
    reference = _decode_all(clips["cuts"], size=40)
    expected = []
    k = 0
    for t, arr in reference:
        if t + 1e-3 >= k / 3.0:
            expected.append((t, arr))
            while k / 3.0 <= t + 1e-3:
                k += 1
    got = list(sample_frames(clips["cuts"], fps=3.0, max_side=40, skip_nonref=False))
    assert [t for t, _ in got] == pytest.approx([t for t, _ in expected])
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))


def test_sample_frames_gray_and_untimed_stream(clips: dict[str, Path]) -> None:
    samples = list(sample_frames(clips["raw_h264"], fps=2.0, gray=True))
    assert [t for t, _ in samples] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert all(f.shape == (64, 96) and f.dtype == np.uint8 for _, f in samples)


def test_sample_frames_rotates(clips: dict[str, Path]) -> None:
    (_, frame), *_ = sample_frames(clips["rot90"], fps=1.0)
    assert frame.shape == (64, 32, 3)


@pytest.mark.parametrize(("fps", "max_side"), [(0.0, 160), (-1.0, 160), (float("nan"), 160), (2.0, 0)])
def test_sample_frames_rejects_bad_arguments(clips: dict[str, Path], fps: float, max_side: int) -> None:
    with pytest.raises(InputError):
        list(sample_frames(clips["cuts"], fps=fps, max_side=max_side))


# ---------------------------------------------------------------------------
# audio


def test_load_audio_length_and_level(clips: dict[str, Path]) -> None:
    audio = load_audio(clips["speech"])
    assert audio.dtype == np.float32 and audio.ndim == 1
    speech_s = synth.wav_seconds(clips["speech"].with_suffix(".wav"))
    # AAC rounds the track up to whole 1024-sample frames: at most 0.05 s more.
    assert len(audio) / 16000 == pytest.approx(speech_s, abs=0.06)
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert np.abs(audio).max() <= 1.0
    assert len(load_audio(clips["speech"], sr=8000)) == pytest.approx(len(audio) / 2, abs=2)


def test_load_audio_keeps_the_video_clock(clips: dict[str, Path]) -> None:
    # The audio track starts 1 s after the video: sample 0 must still be t = 0.
    audio = load_audio(clips["speech_late"])
    assert np.abs(audio[: int(0.9 * 16000)]).max() < 1e-3
    assert np.sqrt(np.mean(audio[16000:] ** 2)) > 0.01
    speech_s = synth.wav_seconds(clips["speech_late"].with_suffix(".wav"))
    assert len(audio) / 16000 == pytest.approx(1.0 + speech_s, abs=0.06)


def test_no_audio(clips: dict[str, Path]) -> None:
    assert has_audio(clips["speech"]) is True
    assert has_audio(clips["noaudio"]) is False
    with pytest.raises(MediaError, match="no audio stream") as excinfo:
        load_audio(clips["noaudio"])
    assert str(clips["noaudio"]) in str(excinfo.value)


@pytest.mark.parametrize("sr", [0, -16000, 16000.5])
def test_load_audio_rejects_bad_rate(clips: dict[str, Path], sr) -> None:
    with pytest.raises(InputError):
        load_audio(clips["speech"], sr=sr)


# ---------------------------------------------------------------------------
# still images


def test_load_image_reads_a_picture(tmp_path: Path) -> None:
    png = synth.make_still_image(tmp_path)  # testsrc2, 64x48
    img = load_image(png)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert load_image(png, max_side=32).shape == (24, 32, 3)


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:5, :10, 0] = 255  # red box top-left of a 40x20 picture
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer turns the picture 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.shape == (40, 20, 3)
    assert img[:10, -5:, 0].mean() > 200  # the box is now top-right


@pytest.mark.parametrize("maker", [synth.make_not_video, synth.make_no_audio_clip])
def test_load_image_rejects_non_pictures(tmp_path: Path, maker) -> None:
    path = maker(tmp_path)
    with pytest.raises(MediaError, match="not a picture") as excinfo:
        load_image(path)
    assert str(path) in str(excinfo.value)
    with pytest.raises(NotFoundError):
        load_image(tmp_path / "nope.jpg")


# ---------------------------------------------------------------------------
# real clips (../shared/media)

# One clip per container/codec in the folder, plus a rotated phone clip.
REAL_CLIPS = ["c004", "c005", "c015", "c016", "c044", "c001", "c011", "c061", "c050", "c040"]


def _manifest() -> dict[str, dict[str, str]]:
    assert SHARED is not None
    with open(SHARED / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.mark.shared_media
@needs_shared
@pytest.mark.parametrize("clip_id", REAL_CLIPS)
def test_probe_matches_manifest(clip_id: str) -> None:
    row = _manifest()[clip_id]
    info = probe(SHARED / row["file"])
    # The manifest rounds ffprobe 5.1's format duration (the mp4 header's, up to
    # 0.06 s past the longest stream); PyAV's FFmpeg 8.1 gives the longest stream's end.
    assert info.duration == pytest.approx(float(row["duration_s"]), abs=0.07)
    assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
    assert info.video_codec == row["video_codec"]
    assert info.has_audio == (row["audio_codec"] != "-")
    assert info.audio_codec == (None if row["audio_codec"] == "-" else row["audio_codec"])
    assert info.fps is not None and 5 < info.fps < 61


@pytest.mark.shared_media
@needs_shared
def test_real_rotated_clip() -> None:
    info = probe(SHARED / "c040.mp4")  # a phone clip stored upside down
    assert info.rotation == 180


@pytest.mark.shared_media
@needs_shared
@pytest.mark.parametrize("clip_id", ["c005", "c016", "c044", "c040", "c058", "c015"])
def test_real_frames_match_straight_decode(clip_id: str) -> None:
    path = SHARED / _manifest()[clip_id]["file"]
    reference = _decode_all(path, size=48)
    duration = probe(path).duration
    wanted = [0.0, duration * 0.7, duration * 0.3, duration * 0.31, duration - 0.01, duration * 0.05]
    for want, (t, frame) in zip(wanted, frames_at(path, wanted, size=48), strict=True):
        expected_t, expected = _on_screen(reference, want)
        assert t == pytest.approx(expected_t, abs=1e-9)
        assert np.array_equal(frame, expected)


@pytest.mark.shared_media
@needs_shared
@pytest.mark.parametrize("clip_id", ["c005", "c038", "c061", "c016"])
def test_real_audio_length(clip_id: str) -> None:
    row = _manifest()[clip_id]
    audio = load_audio(SHARED / row["file"])
    assert len(audio) / 16000 == pytest.approx(float(row["duration_s"]), abs=0.2)
    assert np.sqrt(np.mean(audio**2)) > 1e-3
