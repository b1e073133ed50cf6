"""The ingest seams: stages listed by one builder and swappable without monkeypatching,
one ``decide`` and one ``commit`` with one error policy, progress as events, and an
existing index that keeps its own encoders."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.cli import main
from engine.config import IndexConfig
from engine.errors import InputError
from engine.index import VideoIndex
from indexer.ingest import AFTER_COMMIT, Decision, IngestEvent, commit, decide, file_hash, open_writer
from indexer.mapper import analyse_file
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from indexer.stages import STAGES, Stage, Work, build_stages, check_order
from tests import synth

FAST = IndexOptions(speech=False, ocr=False)


class CountingLabeller(Stage):
    """A labeller a test plugs in: one label per keyframe, recording what it saw."""

    name = "fake_labels"
    needs = ("frames",)
    adds = ("keyframe_labels",)
    at = 0.8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run(self, work: Work) -> None:
        self.seen.append(work.source)
        for t, _ in work.frames:
            work.keyframe_labels.setdefault(t, []).append(["zebra crossing", 0.99])


@pytest.fixture
def clip(tmp_path, tools) -> Path:
    return synth.make_cuts_clip(tmp_path, name="cuts.mp4")[0]


def _names(stages) -> list[str]:
    return [s.name for s in stages]


def test_builder_lists_the_stages_the_options_ask_for_in_order():
    assert _names(build_stages(IndexOptions(pose=True))) == [cls.name for cls in STAGES]  # every labeller on
    assert "pose" not in _names(build_stages(IndexOptions()))  # the pose labeller is opt-in
    assert "objects" not in _names(build_stages(IndexOptions(objects=False)))
    assert _names(build_stages(IndexOptions(speech=False))) == [
        "probe", "shots", "keyframes", "visual", "objects", "faces", "ocr", "text_follow", "picture", "scene",
        "text_embed", "timeline", "face_tracks", "thumbnails"]
    # no keyframes stage: the thumbnails stage decodes its own frames
    assert _names(build_stages(IndexOptions(visual=False, ocr=False))) == [
        "probe", "shots", "audio", "speech", "text_embed", "timeline", "thumbnails"]
    # OCR alone still needs the keyframes stage
    assert "keyframes" in _names(build_stages(IndexOptions(visual=False, speech=False)))


def test_order_check_names_the_missing_input_and_duplicate_names():
    probe, shots, *_ = build_stages(FAST)
    with pytest.raises(InputError, match="fake_labels.*needs frames"):
        check_order([probe, shots, CountingLabeller()])
    with pytest.raises(InputError, match="two stages are named 'probe'"):
        check_order([probe, probe])


def test_a_plugged_in_stage_runs_is_timed_and_its_labels_are_indexed(tmp_path, clip):
    fake = CountingLabeller()
    events: list[IngestEvent] = []
    report = index_paths([str(clip)], tmp_path / "idx", options=FAST, progress=events.append,
                         stages=build_stages(FAST, extra=[fake]))
    assert [r.status for r in report.results] == ["indexed"]
    assert fake.seen == [str(clip)]
    assert "fake_labels" in report.results[0].stages
    assert any(e.kind == "stage" and e.stage == "fake_labels" for e in events)
    with VideoIndex.open(tmp_path / "idx") as idx:
        segs = idx.catalog.segments_of(idx.catalog.find_by_source(str(clip)).key)
        assert segs and all(any(lab[0] == "zebra crossing" for lab in s.labels) for s in segs)
        hits = idx.lexical_search("zebra crossing", k=5, fields=["labels"])
        assert {h.id for h in hits} == {s.id for s in segs}


def test_progress_events_frame_the_batch(tmp_path, clip):
    other = synth.make_no_audio_clip(tmp_path, name="other.mp4")
    events: list[IngestEvent] = []
    index_paths([str(clip), str(other)], tmp_path / "idx", options=FAST, progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert events[0].total == 2 and events[0].total_bytes == clip.stat().st_size + other.stat().st_size
    files = [e for e in events if e.kind == "file"]
    assert [e.done for e in files] == [1, 2] and all(e.result.status == "indexed" for e in files)
    stages = [e.stage for e in events if e.kind == "stage" and e.source == str(clip)]
    assert stages[:2] == ["probe", "shots"] and stages[-1] == "done"
    # a second run decides both files unchanged: no analysis, so no start/end events
    events.clear()
    r = index_paths([str(clip), str(other)], tmp_path / "idx", options=FAST, progress=events.append)
    assert {x.status for x in r.results} == {"skipped"} and events == []


def test_decide_new_unchanged_changed_duplicate(tmp_path, clip):
    index_paths([str(clip)], tmp_path / "idx", options=FAST)
    h = file_hash(str(clip))
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(clip))
        cat = idx.catalog
        assert decide(cat, str(clip), h, tenant="default").action == "unchanged"
        assert decide(cat, "/elsewhere/copy.mp4", h, tenant="default") == Decision(
            "/elsewhere/copy.mp4", "duplicate", h, rec.video_id,
            reason=f"same content as {clip} ({rec.video_id})")
        changed = decide(cat, str(clip), "0" * 64, tenant="default")
        assert (changed.action, changed.replace_key, changed.needs_analysis) == ("changed", rec.key, True)
        assert decide(cat, str(clip), h, tenant="other").action == "new"  # tenants do not see each other
        batch: dict[str, str] = {}
        assert decide(cat, "/a.mp4", "1" * 64, tenant="default", batch=batch).action == "new"
        second = decide(cat, "/b.mp4", "1" * 64, tenant="default", batch=batch)
        assert second.action == "duplicate" and "/a.mp4" in second.reason


def test_a_failing_step_after_the_commit_is_a_warning_not_a_lost_video(tmp_path, clip):
    def broken(index, rec, analysis):
        raise RuntimeError("graph store unavailable")

    h = file_hash(str(clip))
    index = open_writer(tmp_path / "idx")
    try:
        d = decide(index.catalog, str(clip), h, tenant="default")
        analysis = analyse_file(str(clip), h, index.config, FAST)
        res = commit(index, d, analysis, FAST, after=(("graph", lambda o: True, broken),) + AFTER_COMMIT[1:])
        assert res.status == "indexed" and res.video_id
        assert res.warnings == ["graph failed: RuntimeError: graph store unavailable"]
        assert index.catalog.find_by_source(str(clip)).video_id == res.video_id
    finally:
        index.close()


def test_a_failed_analysis_is_recorded_once_through_commit(tmp_path):
    bad = synth.make_not_video(tmp_path)
    index = open_writer(tmp_path / "idx")
    try:
        d = decide(index.catalog, str(bad), file_hash(str(bad)), tenant="default")
        analysis = analyse_file(str(bad), d.content_hash, index.config, FAST)
        assert not analysis.ok and analysis.code
        res = commit(index, d, analysis, FAST)
        assert res.status == "failed" and str(bad) in res.reason
        assert [f.source for f in index.catalog.failures()] == [str(bad)]
    finally:
        index.close()


def test_an_existing_index_keeps_its_encoder_and_says_so(tmp_path, clip, capsys):
    idx = tmp_path / "idx"
    assert main(["index", str(clip), "--index", str(idx), "--no-speech", "--no-ocr", "--quiet"]) == 0
    with pytest.raises(InputError, match="keeps the settings it was built with: text_encoder 'minilm'"):
        open_writer(idx, IndexConfig(text_encoder="e5-multilingual"))
    other = tmp_path / "again.mp4"
    shutil.copy(synth.make_no_audio_clip(tmp_path, name="n.mp4"), other)
    rc = main(["index", str(other), "--index", str(idx), "--text-encoder", "e5-multilingual", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "keeps the settings it was built with" in err and "text_encoder" in err
    # without the flag the same command indexes with the index's own encoder
    assert main(["index", str(other), "--index", str(idx), "--no-speech", "--no-ocr", "--quiet"]) == 0
    with VideoIndex.open(idx) as index:
        assert index.config.text_encoder == "minilm" and index.catalog.counts()["videos"] == 2
