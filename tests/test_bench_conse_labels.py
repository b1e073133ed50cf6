"""The classifier-side benchmark's arithmetic (benchmarks.bench_conse_labels)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_conse_labels import average_precision, concepts, prompt


def test_average_precision_and_first_rank():
    scores = np.array([0.9, 0.8, 0.7, 0.6])  # ranked 0, 1, 2, 3
    ap, first = average_precision(scores, {0, 2})
    assert ap == pytest.approx(((1 / 1) + (2 / 3)) / 2) and first == 1.0
    assert average_precision(scores, {3}) == pytest.approx((0.25, 0.25))


def test_concepts_from_hand_labels():
    rows = [
        {"objects": ["dog"], "people": 2, "faces": [{"gender": "female", "age": "child"}], "style": [], "scene": []},
        {"objects": ["dog"], "people": 1, "faces": [{"gender": "male", "age": "adult"}], "style": ["cartoon"],
         "scene": ["dark"]},
        {"objects": [], "people": 0, "faces": [], "style": [], "scene": ["dark"]},
    ]
    got = concepts(rows)
    assert got == {"dark": {1, 2}, "dog": {0, 1}, "person": {0, 1}}  # the rest label one frame only
    assert prompt("dog") == "a photo of a dog" and prompt("dark") == "a dark scene at night"


def test_encoders_run_with_a_new_index_options_unless_told(monkeypatch):
    from benchmarks import bench_conse_labels
    from engine.models import registry

    got = []

    class Enc:
        class info:
            version = "v"

        def encode_images(self, frames):
            return np.eye(len(frames), 4, dtype=np.float32)

        def encode_text(self, texts):
            return np.eye(len(texts), 4, dtype=np.float32)

    monkeypatch.setattr(registry, "get_image_encoder", lambda name, **o: got.append((name, o)) or Enc())
    rows = [{"objects": ["dog"], "people": 0, "faces": [], "style": [], "scene": []}] * 2
    frames = [np.zeros((2, 2, 3), np.uint8)] * 2
    bench_conse_labels.run(["imagenet-effnet-minilm", "open-clip"], rows, frames)
    assert got == [("imagenet-effnet-minilm", {"top_k": 50, "hypernyms": 3}), ("open-clip", {})]
    got.clear()
    bench_conse_labels.run(["imagenet-effnet-minilm"], rows, frames, {"top_k": 50})
    assert got == [("imagenet-effnet-minilm", {"top_k": 50})]
    assert bench_conse_labels.main(["--image-options", "{top_k: 5}", "--media", "."]) == 2
    assert bench_conse_labels.main(["--image-options", "[50]", "--media", "."]) == 2
