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
