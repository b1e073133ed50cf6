"""Indoors or outdoors from a keyframe's visual vector (indexer.scene, the scene stage)."""
from __future__ import annotations

import numpy as np

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.scene import CALIBRATION, INDOOR_PLACES, OUTDOOR_PLACES, SceneReader
from indexer.stages import build_stages
from indexer.stages.base import Work
from indexer.stages.scene import SceneStage


class _Places:
    """A text encoder where each place prompt is its own axis: outdoor places 0..12,
    indoor places 13..24."""

    names = [f"a photo of {p}" for p in (*OUTDOOR_PLACES, *INDOOR_PLACES)]

    def encode_text(self, texts):
        out = np.zeros((len(texts), len(self.names)), np.float32)
        for i, t in enumerate(texts):
            out[i, self.names.index(t)] = 1.0
        return out


def _frame(outdoor: float, indoor: float) -> np.ndarray:
    v = np.zeros(len(_Places.names), np.float32)
    v[0], v[len(OUTDOOR_PLACES)] = outdoor, indoor
    return v


def test_the_difference_of_best_cosines_sets_the_label_and_its_score():
    reader = SceneReader(_Places(), CALIBRATION[("imagenet-minilm", 10, 0)])  # out_at 0.05, in_at 0, spread 0.2
    got = reader.labels([_frame(0.30, 0.10), _frame(0.30, 0.25), _frame(0.10, 0.25), _frame(0.200, 0.175)])
    assert got[0] == [("scene", "outdoor", 1.0)]  # d = 0.20: 0.5 + 0.15 / 0.2, clipped
    assert got[1] == [("scene", "outdoor", 0.5)]  # d = 0.05: at the cut point, shown
    assert got[2] == [("scene", "indoor", 1.0)]  # d = -0.15
    assert got[3] == []  # d = 0.025, midway between the cut points: 0.375 either side, under KEEP_FROM
    assert reader.labels([]) == []


def test_the_stage_runs_after_the_visual_vectors_and_only_for_a_calibrated_encoder():
    names = [s.name for s in build_stages(IndexOptions())]
    assert names.index("visual") < names.index("scene")
    work = Work(source="x", content_hash="h", config=IndexConfig(image_encoder="open_clip"), options=IndexOptions())
    work.keyframe_vectors = {1.0: np.ones(4, np.float32)}
    assert not SceneStage().applies(work)  # no cut points measured for it: no scene labels
    assert "scene" not in [s.name for s in build_stages(IndexOptions(picture=False))]


KNOWN = [("c045", 1.667, "outdoor"), ("c049", 1.667, "outdoor"), ("c008", 0.917, "outdoor"),
         ("c028", 1.36, "indoor"), ("c068", 1.235, "indoor"), ("c012", 5.739, "indoor")]  # hand labels


def test_real_keyframes_whose_place_is_known(shared_media):
    from engine.models.registry import get_image_encoder
    from indexer.media import frames_at
    from indexer.scene import scene_reader

    enc = get_image_encoder("imagenet-minilm")
    frames = [next(iter(frames_at(next(shared_media.glob(f"{clip}.*")), [t], size=1280)))[1] for clip, t, _ in KNOWN]
    vectors = enc.encode_images(frames)
    d = scene_reader("imagenet-minilm", enc).difference(vectors)
    assert min(d[:3]) > max(d[3:])  # every outdoor frame reads more outdoor than every indoor one
    work = Work(source="x", content_hash="h", config=IndexConfig(image_encoder="imagenet-minilm"),
                options=IndexOptions())
    work.keyframe_vectors = {float(i): v for i, v in enumerate(vectors)}
    stage = SceneStage()
    assert stage.applies(work)
    stage.run(work)
    for i in (0, 1):  # a rooftop terrace and a swimming pool: shown as outdoors
        (kind, label, score, box), = work.frame_labels[float(i)]
        assert (kind, label, box) == ("scene", "outdoor", None) and score >= 0.5
    assert all(lab[1] == "indoor" for i in (3, 4, 5) for lab in work.frame_labels.get(float(i), []))


def test_scene_filters_and_the_seen_line():
    from query.concepts import describe
    from query.filters import labels_pass
    from query.parse import parse

    q = parse("dog running scene:outdoor -scene:dark")
    assert labels_pass({("object", "dog"): 0.7, ("scene", "outdoor"): 0.8}, q)
    assert not labels_pass({("scene", "outdoor"): 0.45}, q)  # under the shown score: not outdoors
    assert not labels_pass({("scene", "indoor"): 0.9}, q)
    assert not labels_pass({("scene", "outdoor"): 0.8, ("scene", "dark"): 0.9}, q)
    assert "outdoor" in describe({("scene", "outdoor"): 0.8, ("object", "dog"): 0.7})
    assert describe({("scene", "outdoor"): 0.6, ("scene", "indoor"): 0.9, ("scene", "dark"): 0.7}) == "indoor, dark"
