"""Colour names of frames: colour cards with a known answer."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.colours import colour_names


def card(*parts: tuple[tuple[int, int, int], float]) -> np.ndarray:
    """A 90x160 frame of vertical bands: (RGB, share of the width) each."""
    frame = np.zeros((90, 160, 3), np.uint8)
    x = 0
    for rgb, share in parts:
        w = int(round(160 * share))
        frame[:, x : x + w] = rgb
        x += w
    return frame


@pytest.mark.parametrize("rgb,name", [
    ((220, 30, 30), "red"), ((240, 140, 20), "orange"), ((235, 220, 40), "yellow"), ((40, 180, 60), "green"),
    ((30, 200, 210), "cyan"), ((30, 60, 220), "blue"), ((140, 50, 200), "purple"), ((240, 100, 190), "pink"),
    ((120, 70, 30), "brown"), ((10, 10, 10), "black"), ((245, 245, 245), "white"), ((128, 128, 128), "grey"),
])
def test_a_one_colour_card_is_named(rgb, name):
    assert colour_names(card((rgb, 1.0)))[0] == (name, 1.0)


def test_shares_are_ordered_and_small_colours_left_out():
    names = colour_names(card(((30, 60, 220), 0.6), ((220, 30, 30), 0.35), ((40, 180, 60), 0.05)))
    assert [n for n, _ in names] == ["blue", "red"]
    assert names[0][1] == pytest.approx(0.6, abs=0.03) and names[1][1] == pytest.approx(0.35, abs=0.03)


def test_neutrals_are_named_only_when_they_fill_most_of_the_frame():
    assert [n for n, _ in colour_names(card(((128, 128, 128), 0.4), ((220, 30, 30), 0.6)))] == ["red"]
    assert [n for n, _ in colour_names(card(((128, 128, 128), 0.7), ((220, 30, 30), 0.3)))] == ["grey", "red"]
