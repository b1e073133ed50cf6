"""Damaged videos (issue 21, item 5): a file cut short or corrupt in the middle is indexed
as far as it decodes, recorded with the decodable duration and marked ``damaged`` with
the reason (the index summary, ``vidseek info``, the API, ``has:damage``), and ``vidseek
index`` exits 1 unless ``--accept-damage``. Good clips are never marked damaged.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from api.cli import main
from engine.index import VideoIndex
from indexer import media
from query.filters import video_passes
from query.parse import parse
from tests import synth

FAST = ["--no-speech", "--no-ocr", "--quiet"]
SECONDS = 10.0  # the source clip of the damaged ones: testsrc2, 10 fps, a keyframe a second
# A few real clips of several containers; c016.ogg has damaged audio packets (its picture is whole).
REAL = ("c016.ogg", "c005.mpg", "c058.avi", "c015.webm", "c047.mp4", "c004.avi")


def _source(d: Path) -> bytes:
    """A 10 s testsrc2 mp4 with its index (moov) first, as a cut-short download keeps it."""
    src = d / "damage_source.mp4"
    synth._ffmpeg(*synth._lavfi("testsrc2", (96, 64), 10, SECONDS), *synth._X264, "-g", "10",
                  "-movflags", "+faststart", *synth._BITEXACT, str(src))
    data = src.read_bytes()
    src.unlink()
    return data


def make_truncated(d: Path, data: bytes, share: float = 0.3, name: str = "cut30.mp4") -> Path:
    """The file cut to its first ``share`` of bytes: the header still claims 10 s."""
    path = d / name
    path.write_bytes(data[: int(len(data) * share)])
    return path


def make_corrupt_middle(d: Path, data: bytes, name: str = "middle.mp4", seed: int = 7) -> Path:
    """The media data from 35% to 65% replaced with seeded random bytes."""
    offset, size = synth._mp4_box(data, b"mdat")
    start, end = offset + 8, offset + size
    a, b = start + (end - start) * 35 // 100, start + (end - start) * 65 // 100
    rng = random.Random(seed)
    buf = bytearray(data)
    buf[a:b] = bytes(rng.getrandbits(8) for _ in range(b - a))
    path = d / name
    path.write_bytes(bytes(buf))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory, tools) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("damage")
    data = _source(d)
    good = d / "good.mp4"
    good.write_bytes(data)
    return {"good": good, "cut": make_truncated(d, data), "middle": make_corrupt_middle(d, data),
            "short": synth.make_no_audio_clip(d, name="short.mp4")}


def _assess(path: Path) -> media.Damage | None:
    info = media.probe(path)
    report = media.DecodeReport()
    for _ in media.sample_frames(path, fps=4.0, max_side=160, report=report):
        pass
    return media.assess_damage(info, report)


# -- the detector ------------------------------------------------------------------------------
def test_a_truncated_file_is_damaged_with_its_decodable_duration(clips):
    info = media.probe(clips["cut"])
    assert info.duration == pytest.approx(SECONDS, abs=0.2)  # the header still claims it all
    d = _assess(clips["cut"])
    assert d is not None, "a file cut to 30% was not found damaged"
    assert d.probed_duration == pytest.approx(info.duration)
    assert 1.0 < d.decodable_duration < 0.5 * SECONDS and d.decodable_end == d.decodable_duration
    assert "decode only to" in d.reason and d.gaps[-1][1] == pytest.approx(SECONDS, abs=0.2)


def test_a_corrupt_middle_is_damaged_with_its_gap(clips):
    d = _assess(clips["middle"])
    assert d is not None, "a file with a corrupt middle was not found damaged"
    assert "in the middle do not decode" in d.reason and d.skipped_packets > 0
    assert d.decodable_duration < d.probed_duration - 1.0
    assert d.decodable_end == pytest.approx(SECONDS, abs=0.2)  # what follows the gap still decodes
    (a, b), = d.gaps
    assert 2.0 < a < b < 8.0


def test_good_clips_are_not_damaged(clips, e2e_clips):
    for path in [clips["good"], clips["short"], *e2e_clips.values()]:
        assert _assess(path) is None, path


@pytest.mark.shared_media
def test_real_clips_are_not_damaged_audio_damage_does_not_count(shared_media):
    for name in REAL:
        path = shared_media / name
        if not path.is_file():
            pytest.skip(f"{path} is missing")
        assert _assess(path) is None, name


@pytest.mark.slow
@pytest.mark.shared_media
def test_no_clip_of_the_shared_media_is_damaged(shared_media):
    """The whole ../shared/media folder (71 clips at writing): none is damaged."""
    names = [line.split("\t")[1] for line in (shared_media / "MANIFEST.tsv").read_text().splitlines()[1:]]
    damaged = {n: d.reason for n in names if (shared_media / n).is_file() and (d := _assess(shared_media / n))}
    assert not damaged


# -- through vidseek index, info, the filter and the API ---------------------------------------
@pytest.fixture(scope="module")
def damaged_index(clips, tmp_path_factory) -> tuple[Path, int, str]:
    idx = tmp_path_factory.mktemp("damage_idx") / "idx"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["index", str(clips["good"]), str(clips["cut"]), str(clips["middle"]), "--index", str(idx), *FAST])
    return idx, rc, out.getvalue()


def test_index_marks_damaged_videos_and_exits_1(damaged_index, clips):
    idx, rc, out = damaged_index
    assert rc == 1, out
    assert f"DAMAGED {clips['cut']}: frames decode only to" in out
    assert f"DAMAGED {clips['middle']}: " in out and "in the middle do not decode" in out
    assert f"DAMAGED {clips['good']}" not in out
    assert "2 damaged videos: exit status 1 (--accept-damage accepts them)" in out
    with VideoIndex.open(idx) as index:
        good = index.catalog.find_by_source(str(clips["good"]))
        cut = index.catalog.find_by_source(str(clips["cut"]))
        middle = index.catalog.find_by_source(str(clips["middle"]))
        assert good.status == "indexed" and "damage" not in good.stats
        assert good.duration == pytest.approx(SECONDS, abs=0.2)
        assert cut.status == middle.status == "damaged"
        dmg = cut.stats["damage"]
        assert dmg["probed_duration"] == pytest.approx(SECONDS, abs=0.2)
        assert cut.duration == pytest.approx(dmg["decodable_duration"]) and cut.duration < 0.5 * SECONDS
        assert max(s.end for s in index.catalog.segments_of(cut.key)) == pytest.approx(cut.duration)
        assert middle.stats["damage"]["decodable_duration"] < middle.stats["damage"]["probed_duration"] - 1.0
        assert [f.source for f in index.catalog.failures()] == []


def test_index_json_summary_lists_damage(clips, tmp_path, capsys):
    assert main(["index", str(clips["cut"]), "--index", str(tmp_path / "idx"), *FAST, "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_status"] == {"indexed": 1} and summary["failures"] == []
    (d,) = summary["damaged"]
    assert d["source"] == str(clips["cut"]) and d["video_id"]
    assert d["decodable_duration"] < d["probed_duration"] - 1.0 and d["reason"]


def test_accept_damage_exits_0(clips, tmp_path, capsys):
    args = ["index", str(clips["good"]), str(clips["middle"]), "--index", str(tmp_path / "idx"), *FAST]
    assert main([*args, "--accept-damage"]) == 0
    out = capsys.readouterr().out
    assert f"DAMAGED {clips['middle']}" in out and "exit status 1" not in out
    # a failed file still exits 1 with --accept-damage
    bad = synth.make_not_video(tmp_path)
    assert main(["index", str(bad), "--index", str(tmp_path / "idx"), *FAST, "--accept-damage"]) == 1


def test_a_good_batch_exits_0(clips, tmp_path, capsys):
    assert main(["index", str(clips["good"]), str(clips["short"]), "--index", str(tmp_path / "idx"), *FAST]) == 0
    assert "DAMAGED" not in capsys.readouterr().out


def test_info_marks_damaged_videos(damaged_index, clips, capsys):
    idx = damaged_index[0]
    assert main(["info", "--index", str(idx)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = {name: [ln for ln in lines if str(clips[name]) in ln] for name in ("good", "cut", "middle")}
    assert "DAMAGED: frames decode only to" in line["cut"][0] and "DAMAGED: " in line["middle"][0]
    assert "DAMAGED" not in line["good"][0]
    assert main(["info", "--index", str(idx), "--json"]) == 0
    videos = {v["source"]: v for v in json.loads(capsys.readouterr().out)["videos"]}
    assert videos[str(clips["cut"])]["status"] == "damaged" and videos[str(clips["good"])]["status"] == "indexed"


def test_has_damage_filter(damaged_index, clips):
    with VideoIndex.open(damaged_index[0]) as index:
        recs = {k: index.catalog.find_by_source(str(clips[k])) for k in ("good", "cut", "middle")}
    assert parse("has:damage").filters.has == ("damage",)
    assert parse("-has:damaged").filters.has_not == ("damage",)
    with_damage = {k for k, v in recs.items() if video_passes(v, parse("boat has:damage"))}
    without = {k for k, v in recs.items() if video_passes(v, parse("boat -has:damage"))}
    assert with_damage == {"cut", "middle"} and without == {"good"}


def test_search_with_has_damage(damaged_index, clips, capsys):
    idx = damaged_index[0]
    # the filter is under test, not the confidence of a synthetic test pattern: show every hit
    assert main(["search", "colour test pattern has:damage", "--index", str(idx), "--json", "--k", "50",
                 "--min-confidence", "low"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and {h["source"] for h in hits} <= {str(clips["cut"]), str(clips["middle"])}
    assert main(["search", "colour test pattern -has:damage", "--index", str(idx), "--json", "--k", "50",
                 "--min-confidence", "low"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and {h["source"] for h in hits} == {str(clips["good"])}


def test_api_video_json_carries_status_and_damage(damaged_index, clips):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app

    app = create_app(damaged_index[0], Settings(rate=0, warm_models=False))
    with TestClient(app) as client:
        r = client.get("/v1/videos")
        assert r.status_code == 200, r.text
        videos = {v["source"]: v for v in r.json()["videos"]}
        cut, good = videos[str(clips["cut"])], videos[str(clips["good"])]
        assert cut["status"] == "damaged" and cut["damage"]["decodable_duration"] < cut["damage"]["probed_duration"]
        assert "decode only to" in cut["damage"]["reason"] and cut["duration"] == cut["damage"]["decodable_duration"]
        assert good["status"] == "indexed" and good["damage"] is None
        one = client.get(f"/v1/videos/{cut['video_id']}").json()
        assert one["status"] == "damaged" and one["damage"] == cut["damage"]
