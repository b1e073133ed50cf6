"""Hair colour (indexer.hair): drawn heads of each colour on a backdrop, under a colour
cast, and the cases that must give no name; real faces of ../shared/media; the query
words that name hair; the label through the faces stage."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from indexer.hair import HAIR_COLOURS, MIN_FACE_PX, hair_colour

SKIN = (222, 172, 140)
BACKDROP = (60, 120, 200)  # a blue studio wall
HAIR = {"black": (22, 18, 16), "brown": (88, 64, 46), "blonde": (226, 196, 128), "red": (176, 82, 40),
        "grey": (176, 176, 174)}


def head(hair: tuple[int, int, int] | None, *, side: int = 100, cast=(1.0, 1.0, 1.0)):
    """A 480x360 frame: a skin-coloured face of ``side`` px with ``hair`` over and beside
    it (None: bald, the skin goes on up), on a blue backdrop; the face box."""
    import cv2

    img = np.zeros((360, 480, 3), np.uint8)
    img[:] = BACKDROP
    x0, y0 = 190, 140
    x1, y1 = x0 + side, y0 + int(side * 1.2)
    top = hair if hair is not None else SKIN
    # the skull: a wider ellipse behind the face, hair-coloured
    cv2.ellipse(img, ((x0 + x1) // 2, y0 + side // 4), (int(side * 0.68), int(side * 0.62)), 0, 0, 360, top, -1)
    cv2.ellipse(img, ((x0 + x1) // 2, (y0 + y1) // 2), (side // 2, int(side * 0.62)), 0, 0, 360, SKIN, -1)
    out = np.clip(img.astype(np.float32) * np.asarray(cast, np.float32), 0, 255).astype(np.uint8)
    return out, (float(x0), float(y0), float(x1), float(y1))


@pytest.mark.parametrize("name", HAIR_COLOURS)
def test_each_colour_is_named(name):
    rgb, box = head(HAIR[name])
    got = hair_colour(rgb, box)
    assert got is not None and got[0] == name, got
    assert 0.5 <= got[1] <= 1.0


@pytest.mark.parametrize("name", ["blonde", "grey"])
def test_light_hair_is_not_named(name):
    # found (it is hair, not skin or backdrop) but not named: the light shades were not
    # told apart on real faces, so no name is better than a wrong one
    rgb, box = head(HAIR[name])
    assert hair_colour(rgb, box) is None


@pytest.mark.parametrize("name", ["red", "brown", "black"])
def test_a_warm_colour_cast_moves_skin_and_hair_together(name):
    # a yellow white balance (blue down by a third) turns skin orange; red hair is still
    # the only hair redder than the face
    rgb, box = head(HAIR[name], cast=(1.0, 0.92, 0.66))
    got = hair_colour(rgb, box)
    assert got is not None and got[0] == name, got


def test_no_name_for_a_bald_head_a_tiny_face_or_a_face_filling_the_frame():
    rgb, box = head(None)
    assert hair_colour(rgb, box) is None  # skin above the forehead, backdrop beside it
    small, sbox = head(HAIR["red"], side=MIN_FACE_PX - 8)
    assert hair_colour(small, sbox) is None
    close = np.zeros((120, 100, 3), np.uint8)
    close[:] = SKIN  # a face filling the frame: no band around it to read
    assert hair_colour(close, (0.0, 0.0, 100.0, 120.0)) is None


def test_a_backdrop_of_no_hair_colour_is_not_hair():
    # the same head with the hair painted in the backdrop's blue: nothing to name
    rgb, box = head(BACKDROP)
    assert hair_colour(rgb, box) is None


# -- real faces ---------------------------------------------------------------------------

@pytest.mark.parametrize("clip,t,want", [("c019", 2.0, "red"), ("c042", 1.0, "red"), ("c002", 1.3, "black")])
def test_real_faces_of_the_shared_media(clip, t, want):
    from indexer.covers.faces import detect_faces, mtcnn_model_dir
    from indexer.media import frames_at
    from tests import synth

    media = synth.shared_media_dir()
    if media is None:
        pytest.skip("../shared/media is not here")
    try:
        mtcnn_model_dir()
    except Exception as e:  # MissingDependencyError: the face detector is not installed
        pytest.skip(str(e))
    src = next(p for p in media.iterdir() if p.stem == clip)
    _t, rgb = next(iter(frames_at(str(src), [t])))
    faces = sorted(detect_faces(rgb, min_score=0.9), key=lambda f: -(f.x1 - f.x0))
    assert faces, f"no face found in {clip} at {t} s"
    f = faces[0]
    got = hair_colour(rgb, (f.x0, f.y0, f.x1, f.y1))
    assert got is not None and got[0] == want, got


# -- query words ----------------------------------------------------------------------------

@pytest.mark.parametrize("query,want", [
    ("red-haired woman holding a finger to her lips", ("hair", "red")),
    ("a redhead on a beach", ("hair", "red")),
    ("a woman with auburn hair", ("hair", "red")),
    ("a ginger man", ("hair", "red")),
    ("dark-haired man", ("hair", "black")),
    ("brunette girl", ("hair", "brown")),
])
def test_hair_words_name_hair_not_a_frame_colour(query, want):
    from query.concepts import read_concepts

    concepts, _ = read_concepts(query)
    labels = [lab[:2] for c in concepts for lab in c.labels]
    assert want in labels
    assert ("colour", want[1]) not in labels  # "red-haired" is no red frame


def test_light_hair_words_give_no_concept_and_no_frame_colour():
    from query.concepts import read_concepts

    for query in ("man with grey hair", "old man with white hair", "a blonde woman", "silver-haired lady"):
        labels = [lab[:2] for c in read_concepts(query)[0] for lab in c.labels]
        assert not any(k in ("hair", "colour") for k, _ in labels), (query, labels)


def test_colour_words_elsewhere_stay_colours():
    from query.concepts import read_concepts, ranking_concepts

    labels = [lab[:2] for c in read_concepts("ginger tea in a red cup")[0] for lab in c.labels]
    assert ("colour", "red") in labels and not any(k == "hair" for k, _ in labels)
    concepts = read_concepts("a man in a white shirt with white hair")[0]
    assert [lab[:2] for c in concepts for lab in c.labels].count(("colour", "white")) == 1
    # common hair colours do not rank: most faces have them
    assert [c.name for c in ranking_concepts(read_concepts("dark-haired man")[0])] == ["man"]
    assert "red hair" in [c.name for c in ranking_concepts(read_concepts("red-haired man")[0])]


def test_hair_filter_and_seen_line():
    from query.concepts import describe
    from query.parse import parse

    assert parse("woman hair:ginger").filters.labels == ("hair:red",)
    assert parse("hair:dark").filters.labels == ("hair:black",)
    with pytest.raises(Exception, match="one of: black, brown, red"):
        parse("hair:blonde")
    line = describe({("people", "1"): 0.9, ("face", "woman"): 0.95, ("hair", "red"): 0.8, ("hair", "brown"): 0.55})
    assert "red hair" in line and "brown hair" not in line  # under the shown score


# -- through the faces stage ----------------------------------------------------------------

def test_the_faces_stage_labels_hair_and_black_and_white_drops_it():
    from engine.config import IndexConfig
    from indexer.labels import video_labels
    from indexer.options import IndexOptions
    from indexer.stages.base import Work
    from indexer.stages.faces import FacesStage

    rgb, box = head(HAIR["red"], side=120)
    stage = FacesStage(detect=lambda frame: [(*box, 0.99)],
                       read=lambda crop: {"gender": "female", "gender_p": 0.95, "age": 30.0})
    work = Work(source="x", content_hash="h", config=IndexConfig(), options=IndexOptions(objects=False))
    work.frames = [(1.0, rgb)]
    stage.run(work)
    hair = [x for x in work.frame_labels[1.0] if x[0] == "hair"]
    assert [(k, lab) for k, lab, *_ in hair] == [("hair", "red")]
    assert hair[0][3] == pytest.approx((box[0] / 480, box[1] / 360, box[2] / 480, box[3] / 360))
    work.segments = [SimpleNamespace(keyframe_times=[1.0])]
    work.frame_time = {1.0: 1.0}
    labels, _faces = video_labels(work)
    assert ("hair", "red") in {(lab.kind, lab.label) for lab in labels}
    work.frame_labels[1.0].append(("style", "black and white", 0.9, None))
    labels, _faces = video_labels(work)
    assert not any(lab.kind == "hair" for lab in labels)
