"""The objects labeller stage: labels, people counts and the visual mix from a detector;
a clear warning and no failure without the models; the real CenterNet model on a real
photograph when the converted models are installed (scripts/human-models-onnx.sh)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.index import VideoIndex
from indexer import human_models
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from indexer.stages import build_stages
from indexer.stages.objects import ObjectsStage, count_label
from tests import synth

OPTS = IndexOptions(speech=False, ocr=False, graph=False, timeline=False, objects=True)


def two_people_and_a_dog(rgb):
    return [("person", 0.9, (0, 0, 1, 1)), ("person", 0.6, (1, 1, 2, 2)), ("dog", 0.5, (0, 0, 2, 2)),
            ("cup", 0.25, (0, 0, 1, 1))]  # below MIN_SCORE: not a label


def test_count_labels():
    assert [count_label(n) for n in range(6)] == [None, "one person", "two people", "three people",
                                                 "group of people", "group of people"]


def test_the_stage_labels_keyframes_counts_people_and_mixes_the_visual_vector(tmp_path, tools):
    clip = synth.make_no_audio_clip(tmp_path, seconds=3.0)
    plain = index_paths([str(clip)], tmp_path / "plain", options=IndexOptions(
        speech=False, ocr=False, graph=False, timeline=False))
    stages = [st if st.name != "objects" else ObjectsStage(two_people_and_a_dog) for st in build_stages(OPTS)]
    assert "objects" in [st.name for st in stages]
    r = index_paths([str(clip)], tmp_path / "idx", options=OPTS, stages=stages)
    assert [x.status for x in r.results] == ["indexed"] and "objects" in r.results[0].stages
    with VideoIndex.open(tmp_path / "idx") as idx, VideoIndex.open(tmp_path / "plain") as ref:
        seg = idx.catalog.segments_of(idx.catalog.find_by_source(str(clip)).key)[0]
        names = {lab[0] for lab in seg.labels}
        assert {"person", "dog", "two people"} <= names and "cup" not in names
        assert {h.id for h in idx.lexical_search("two people", k=5, fields=["labels"])} == {seg.id}
        ref_seg = ref.catalog.segments_of(ref.catalog.find_by_source(str(clip)).key)[0]
        mixed = idx.modality_vectors([seg.id], ["visual"])["visual"][seg.id]
        before = ref.modality_vectors([ref_seg.id], ["visual"])["visual"][ref_seg.id]
        assert abs(float(np.linalg.norm(mixed)) - 1.0) < 1e-3 and float(mixed @ before) < 0.999


def test_without_the_models_the_stage_warns_and_the_video_still_indexes(tmp_path, tools, monkeypatch, caplog):
    import indexer.stages.objects as objects

    monkeypatch.setenv("VIDSEEK_HUMAN_MODELS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(objects, "_warned", False)
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    with caplog.at_level(logging.WARNING, logger="vidseek.indexer"):
        r = index_paths([str(clip)], tmp_path / "idx", options=OPTS)
    assert [x.status for x in r.results] == ["indexed"]
    assert any("object labels off" in m and "human-models-onnx.sh" in m for m in caplog.messages)
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(clip))
        assert "objects: models not installed" in rec.stats.get("skipped_stages", [])


@pytest.mark.skipif(not human_models.available(), reason="converted models absent: run scripts/human-models-onnx.sh")
def test_centernet_finds_the_person_in_a_photograph(visual_image):
    from PIL import Image

    rgb = np.asarray(Image.open(visual_image).convert("RGB"))
    found = human_models.detect_objects(rgb)
    assert found and found[0][0] == "person" and found[0][1] >= 0.3, found
    x0, y0, x1, y1 = found[0][2]
    assert 0 <= x0 < x1 <= rgb.shape[1] and 0 <= y0 < y1 <= rgb.shape[0]
