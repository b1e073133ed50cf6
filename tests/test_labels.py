"""Frame labellers (issue 15): objects, faces, picture statistics; the label rows in the
catalog; the concept bank; label filters; the label timeline over the API and CLI; a
missing model degrades to a warning while the other labellers run."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from engine.catalog import FaceRecord
from engine.index import VideoIndex
from indexer import human_models, picture
from indexer.labels import derived_labels, face_words
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from indexer.stages import build_stages
from indexer.stages.faces import FacesStage
from indexer.stages.objects import ObjectsStage
from query.concepts import (
    ABSENT_STYLE,
    LABEL_WEIGHT,
    add_evidence,
    coverage,
    describe,
    evidence,
    find_concepts,
    label_weight,
)
from query.filters import labels_pass
from query.parse import parse
from query.planner import Searcher, SearchOptions
from tests import synth

OPTS = IndexOptions(speech=False, ocr=False, graph=False, timeline=False)
DESC = np.ones(1024, np.float32) / 32.0


def two_people_and_a_dog(rgb):
    return [("person", 0.9, (0, 0, 160, 300)), ("person", 0.6, (160, 0, 320, 300)), ("dog", 0.5, (10, 30, 40, 60)),
            ("cup", 0.25, (0, 0, 1, 1))]  # below MIN_SCORE: not a label


def one_face(rgb):
    return [(20.0, 10.0, 50.0, 45.0, 0.99)]


def smiling_woman(face_rgb):
    return {"gender": "female", "gender_p": 0.95, "age": 31.0, "emotion": "happy", "emotion_p": 0.9,
            "descriptor": DESC}


def _stages(opts, detect=two_people_and_a_dog, faces=True):
    out = []
    for st in build_stages(opts):
        if st.name == "objects":
            st = ObjectsStage(detect)
        elif st.name == "faces":
            st = FacesStage(one_face, smiling_woman) if faces else st
        out.append(st)
    return out


# -- labellers on frames with a known answer ----------------------------------------------


def _frame(tmp_path, source: str, vf: str = "", size=(320, 240)) -> np.ndarray:
    import av

    path = tmp_path / (source.split("=")[0] + ".mp4")
    synth._ffmpeg(*synth._lavfi(source, size, 5, 1), *(["-vf", vf] if vf else []), *synth._X264, str(path))
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def test_picture_labels_on_rendered_frames(tmp_path, tools, visual_image):
    from PIL import Image

    bars = _frame(tmp_path, "smptebars")
    assert picture.test_pattern_score(bars) >= 0.5
    assert ("style", "test pattern") in {(k, lab) for k, lab, _ in picture.picture_labels(bars)}
    photo = np.asarray(Image.open(visual_image).convert("RGB"))
    grey = np.repeat(np.asarray(Image.open(visual_image).convert("L"))[:, :, None], 3, axis=2)
    assert picture.greyscale_score(grey) >= 0.9 and picture.greyscale_score(photo) == 0.0
    assert picture.test_pattern_score(photo) == 0.0 and picture.cartoon_score(photo) < 0.5
    red = np.zeros((90, 160, 3), np.uint8)
    red[:] = (200, 20, 20)
    assert ("colour", "red", 1.0) in picture.picture_labels(red)
    flat_grey = np.full((90, 160, 3), 128, np.uint8)
    assert picture.greyscale_score(flat_grey) == 0.0  # nothing to call a black-and-white picture
    assert picture.darkness(np.full((90, 160, 3), 10, np.uint8)) == 1.0 and picture.darkness(photo) == 0.0
    # a drawing in flat saturated colours with black outlines reads as a cartoon, the photo does not
    import cv2

    toon = np.full((360, 640, 3), 255, np.uint8)  # two outlined paint cans with eyes, two coloured words
    for x0, col in ((20, (200, 60, 20)), (330, (40, 90, 220))):
        cv2.rectangle(toon, (x0, 60), (x0 + 110, 300), col, -1)
        cv2.rectangle(toon, (x0, 60), (x0 + 110, 300), (0, 0, 0), 6)
        for x in (x0 + 30, x0 + 80):
            cv2.circle(toon, (x, 120), 16, (255, 255, 255), -1)
            cv2.circle(toon, (x, 120), 16, (0, 0, 0), 6)
            cv2.circle(toon, (x, 124), 6, (0, 0, 0), -1)
    cv2.putText(toon, "RED", (150, 330), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (220, 30, 30), 14)
    cv2.putText(toon, "BLUE", (460, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (30, 60, 220), 12)
    assert picture.cartoon_score(toon) >= 0.5
    screen = np.full((360, 640, 3), 250, np.uint8)
    assert picture.screen_score(screen, text_lines=8) >= 0.5 and picture.screen_score(screen, text_lines=0) == 0.0


def test_a_grey_keyframe_in_a_shot_that_shows_colour_is_not_black_and_white(visual_image):
    """A colourless moment of a colour film (a blizzard before the figure's coat shows)
    is not black-and-white footage; a shot grey all through is."""
    from PIL import Image

    from engine.config import IndexConfig
    from indexer.shots import Shot
    from indexer.stages.base import Work
    from indexer.stages.picture import GreyTap, PictureStage

    photo = np.asarray(Image.open(visual_image).convert("RGB"))
    grey = np.repeat(np.asarray(Image.open(visual_image).convert("L"))[:, :, None], 3, axis=2)
    dark = np.zeros_like(photo)
    work = Work(source="x", content_hash="h", config=IndexConfig(), options=IndexOptions())
    PictureStage().prepare(work)
    (tap,) = work.frame_taps
    assert isinstance(tap, GreyTap)
    # shot 0 (0-4 s): grey, then colour from 2 s; shot 1 (4-8 s): grey, with dark frames that tell nothing
    samples = [(i * 0.25, grey if i < 8 else photo) for i in range(16)]
    samples += [(4 + i * 0.25, dark if i % 3 == 0 else grey) for i in range(16)]
    assert [t for t, _ in tap.tap(iter(samples))] == [t for t, _ in samples]  # passes every sample on
    assert tap.in_colour(0.0, 4.0) and not tap.in_colour(4.0, 8.0) and not tap.in_colour(9.0, 10.0)
    work.shots = [Shot(0, 0.0, 4.0), Shot(1, 4.0, 8.0)]
    work.frames = [(1.0, grey), (5.0, grey)]
    PictureStage().run(work)
    styles = {t: {lab for kind, lab, *_ in labs if kind == "style"} for t, labs in work.frame_labels.items()}
    assert styles == {1.0: set(), 5.0: {"black and white"}}
    assert picture.colour_seen([None, None]) is False and picture.colour_seen([1.0, 0.0, 1.0, 1.0]) is True


def test_face_words_and_people_counts():
    woman = FaceRecord(1.0, (0, 0, .2, .2), 0.99, "female", 0.95, 31.0, "happy", 0.9)
    girl = FaceRecord(1.0, (0, 0, .2, .2), 0.99, "female", 0.9, 8.0)
    unsure = FaceRecord(1.0, (0, 0, .2, .2), 0.99, "male", 0.6, 45.0, "happy", 0.5)
    assert {w for w, _ in face_words(woman)} == {"woman", "30-39"}
    assert {w for w, _ in face_words(girl)} == {"girl", "child", "3-12"}
    assert {w for w, _ in face_words(unsure)} == {"40-49"}  # gender and expression below their thresholds
    objs = [("object", "person", 0.9, None), ("object", "person", 0.5, None), ("object", "dog", 0.6, None)]
    got = {(k, lab) for k, lab, *_ in derived_labels(objs, [woman])}
    assert {("people", "2"), ("face", "woman"), ("emotion", "happy")} <= got
    assert ("people", "3") in {(k, lab) for k, lab, *_ in derived_labels([], [woman, girl, unsure])}
    assert derived_labels([], []) == []


def test_concept_bank_on_golden_queries():
    def names(q):
        return [sorted({(k, lab) for k, lab, w in c.labels if w == 1.0}) for c in find_concepts(q)]

    assert names("two girls dancing") == [[("people", "2")], [("face", "girl")]]
    assert names("a smiling old man with a dog on the sofa") == [
        [("emotion", "happy")], [("face", "elderly")], [("face", "man")], [("object", "dog")], [("object", "couch")]]
    assert names("black-and-white footage of a street at night") == [
        [("style", "black and white")], [("scene", "dark")], []]  # not the colours black and white; [] the street
    assert find_concepts("a street at night")[-1].labels == (("scene", "outdoor", 0.7),)  # outdoors by implication

    assert names("color bars test pattern") == [[("style", "test pattern")]]
    assert names("a red balloon") == [[("colour", "red")]]
    assert names("a group of people") == [sorted(("people", str(k)) for k in range(3, 11))]
    assert names("quarterly revenue report") == []
    # the doer of a hands-on task is framed by the hands, not the face; a count still holds
    assert names("a woman creating a fondant baby and flower") == []
    assert names("a man is slicing bread") == []
    assert names("two women baking a cake") == [[("people", "2")], [("object", "cake")]]
    assert names("a woman walking past a baker slicing bread") == [[("face", "woman")]]
    assert names("a man making funny faces") == [[("face", "man")]]
    # rarer concepts weigh more: "dog" (1 segment of 10) outweighs "person" (9 of 10)
    freq = (10, {("object", "person"): 9, ("object", "dog"): 1})
    concepts = find_concepts("a person with a dog")
    ev = evidence({1: {("object", "person"): 0.9}, 2: {("object", "dog"): 0.9}}, concepts, freq)
    assert ev[2] > 2 * ev[1] > 0
    assert describe({("people", "2"): 0.8, ("face", "woman"): 0.95, ("face", "30-39"): 0.99,
                     ("emotion", "happy"): 0.9, ("object", "dog"): 0.5, ("object", "cup"): 0.31,
                     ("colour", "red"): 1.0, ("colour", "blue"): 0.9}) == "2 people, woman, happy, dog, red"


@pytest.mark.parametrize("query, low, high", [
    ("colour bars test pattern", 1.0, 1.0),  # every word is a style label
    ("a cartoon dog", 1.0, 1.0),
    ("two girls", 1.0, 1.0),  # the count and who
    ("man in a red bow tie talking and pulling faces inside a car", 0.3, 0.6),  # man, bow tie, car
    ("baby next to a fireplace and a blue balloon", 0.1, 0.3),  # baby (colours do not rank)
    ("close-up of fingers pressing the frets of a bass guitar", 0.0, 0.0),
    ("the of and", 0.0, 0.0),  # no content word
])
def test_coverage_is_the_share_of_content_words_the_concepts_explain(query, low, high):
    assert low <= coverage(query) <= high


def test_label_weight_grows_with_coverage():
    assert label_weight(0.8, 0.0) == pytest.approx(0.8 * LABEL_WEIGHT)
    assert label_weight(0.8, 1.0) == pytest.approx(0.8)
    assert label_weight(0.8, 0.3) < label_weight(0.8, 0.6) < label_weight(0.8, 1.0)
    assert label_weight(0.0, 1.0) == 0.0  # a query with no visual side gains nothing from labels


def test_a_reliably_labelled_style_the_query_names_counts_against_segments_without_it():
    scores = {1: 0.6, 2: 0.5, 3: 0.7}
    labels = {1: {("style", "black and white"): 1.0}, 2: {("style", "black and white"): 0.3},  # under the shown score
              3: {("face", "man"): 0.9}}
    out = add_evidence(find_concepts("black and white film of a man in a hat"), 0.8, scores, labels, (10, {}))
    assert out[1] > scores[1]  # the evidence adds
    w = label_weight(0.8)
    man = evidence(labels, find_concepts("black and white film of a man in a hat"), (10, {}))
    assert out[3] == pytest.approx((0.7 + w * man[3]) * ABSENT_STYLE)  # colour film: less
    assert out[2] == pytest.approx((0.5 + w * man.get(2, 0.0)) * ABSENT_STYLE)
    assert max(out, key=out.get) == 1
    # a cartoon the labeller does not see (3D animation) is not pushed down for it
    cartoon = add_evidence(find_concepts("cartoon rabbit"), 0.8, {3: 0.7}, {3: {}}, (10, {}))
    assert cartoon == {3: 0.7}


def test_label_filters_parse_and_apply():
    f = parse("dancing people>=2 face:smiling object:sofa -style:animated").filters
    assert f.people_count.contains(2) and not f.people_count.contains(1)
    assert f.labels == ("emotion:happy", "object:couch") and f.exclude_labels == ("style:cartoon",)
    with pytest.raises(Exception, match="did you mean 'woman'"):
        parse("face:wman")
    with pytest.raises(Exception, match="number of people"):
        parse("people>=lots")
    have = {("people", "2"): 0.9, ("emotion", "happy"): 0.9, ("object", "couch"): 0.6}
    q = parse("people>=2 face:smiling object:sofa -style:animated")
    assert labels_pass(have, q)
    assert not labels_pass({**have, ("style", "cartoon"): 0.9}, q)
    assert not labels_pass({**have, ("people", "2"): 0.2}, q)  # below the shown threshold: not a person count
    assert not labels_pass({("emotion", "happy"): 0.9, ("object", "couch"): 0.6}, q)
    assert not labels_pass({**have, ("emotion", "happy"): 0.7}, q)  # a smile below the shown score


# -- the stages through the executor, the catalog, search, API and CLI --------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, visual_image):
    if synth.require_tools():
        pytest.skip(synth.require_tools())
    d = tmp_path_factory.mktemp("labels")
    dogs = d / "dogs.mp4"  # a photograph held for 3 s (the detectors below are stand-ins)
    synth._ffmpeg("-loop", "1", "-i", str(visual_image), "-t", "3", "-r", "5", "-vf", "scale=320:-2",
                  *synth._X264, *synth._BITEXACT, str(dogs))
    bars = d / "bars.mp4"
    synth._ffmpeg(*synth._lavfi("smptebars", (320, 240), 10, 3), *synth._X264, *synth._BITEXACT, str(bars))

    def detect(rgb):  # the colour bars have no people and no dog; the photograph has both
        return [] if picture.test_pattern_score(rgb) >= 0.5 else two_people_and_a_dog(rgb)

    def faces(rgb):
        return [] if picture.test_pattern_score(rgb) >= 0.5 else one_face(rgb)

    stages = [ObjectsStage(detect) if st.name == "objects" else FacesStage(faces, smiling_woman)
              if st.name == "faces" else st for st in build_stages(OPTS)]
    r = index_paths([str(dogs), str(bars)], d / "idx", options=OPTS, stages=stages)
    assert [x.status for x in r.results] == ["indexed", "indexed"]
    return d / "idx", dogs, bars


def test_labels_and_faces_are_stored_with_their_segments(labelled):
    idx_dir, dogs, bars = labelled
    with VideoIndex.open(idx_dir) as idx:
        rec = idx.catalog.find_by_source(str(dogs))
        rows = idx.catalog.labels_of(rec.key)
        segs = {s.id for s in idx.catalog.segments_of(rec.key)}
        assert rows and all(r.segment in segs for r in rows)
        got = {(r.kind, r.label) for r in rows}
        assert {("object", "person"), ("object", "dog"), ("people", "2"), ("face", "woman"),
                ("emotion", "happy")} <= got and ("object", "cup") not in got
        dog = next(r for r in rows if r.label == "dog")
        assert dog.box is not None and all(0 <= x <= 1 for x in dog.box)
        faces = idx.catalog.faces_of(rec.key, descriptors=True)
        assert faces and faces[0].gender == "female" and faces[0].descriptor.shape == (1024,)
        assert abs(float(np.linalg.norm(faces[0].descriptor)) - 1.0) < 1e-2
        seg = idx.catalog.segments_of(rec.key)[0]
        assert "dog" not in {lab[0] for lab in seg.labels}  # labels are not BM25 text
        b = idx.catalog.find_by_source(str(bars))
        assert ("style", "test pattern") in {(r.kind, r.label) for r in idx.catalog.labels_of(b.key)}
        assert not idx.catalog.faces_of(b.key)
        assert rec.stats["faces"]["faces"] >= 1


def test_search_uses_labels_as_evidence_and_filters(labelled):
    idx_dir, dogs, bars = labelled
    with VideoIndex.open(idx_dir) as idx:
        s = Searcher(idx)
        hits = s.search("object:dog", options=SearchOptions(k=5)).hits
        assert [h.source for h in hits] == [str(dogs)]
        assert "dog" in hits[0].seen and hits[0].snippet.startswith("seen: 2 people")
        assert [h.source for h in s.search("people>=2", options=SearchOptions(k=5)).hits] == [str(dogs)]
        assert s.search("people>=3", options=SearchOptions(k=5)).hits == []
        assert [h.source for h in s.search("style:test-pattern", options=SearchOptions(k=5)).hits] == [str(bars)]
        # text plus a label filter: only the moments that show the label survive
        hits = s.search("colour bars test pattern -object:dog", options=SearchOptions(k=5)).hits
        assert [h.source for h in hits] == [str(bars)]
        hits = s.search("a smiling woman with her dog", options=SearchOptions(k=5)).hits
        assert hits[0].source == str(dogs) and "woman" in hits[0].seen


def test_label_timeline_over_the_api_and_cli(labelled, capsys):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.cli import main
    from api.settings import Settings

    idx_dir, dogs, _ = labelled
    with VideoIndex.open(idx_dir) as idx:
        vid = idx.catalog.find_by_source(str(dogs)).video_id
    app = create_app(idx_dir, Settings(rate=0, warm_models=False))
    with TestClient(app) as c:
        r = c.get(f"/v1/videos/{vid}/labels")
        assert r.status_code == 200, r.text
        body = r.json()
        by = {(x["kind"], x["label"]): x for x in body["labels"]}
        assert {("object", "dog"), ("people", "2"), ("face", "woman"), ("emotion", "happy")} <= set(by)
        inst = by[("object", "dog")]["instances"]
        assert inst and inst[0]["start"] == 0.0 and inst[-1]["end"] > 2.5
        assert body["faces"] and body["faces"][0]["gender"] == "female"
        only = c.get(f"/v1/videos/{vid}/labels", params={"kind": "object", "faces": "false"}).json()
        assert {x["kind"] for x in only["labels"]} == {"object"} and "faces" not in only
        assert c.get(f"/v1/videos/{vid}/labels", params={"kind": "feelings"}).status_code == 400
        assert c.get("/v1/videos/nope/labels").status_code == 404
    assert main(["labels", vid, "--index", str(idx_dir)]) == 0
    out = capsys.readouterr().out
    assert "object" in out and "dog" in out and "0.0-" in out
    assert main(["labels", vid, "--index", str(idx_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["video_id"] == vid


def test_without_the_models_labellers_warn_and_the_rest_runs(tmp_path, tools, monkeypatch, caplog):
    import indexer.stages.objects as objects

    monkeypatch.setenv("VIDSEEK_HUMAN_MODELS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(objects, "_warned", set())
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    with caplog.at_level(logging.WARNING, logger="vidseek.indexer"):
        r = index_paths([str(clip)], tmp_path / "idx", options=OPTS)
    assert [x.status for x in r.results] == ["indexed"]
    assert any("objects labels off" in m and "human-models-onnx.sh" in m for m in caplog.messages)
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(clip))
        skipped = rec.stats.get("skipped_stages", [])
        assert "objects: models not installed" in skipped and "faces: models not installed" in skipped
        assert "picture" in rec.stats["stages"]  # the labeller that needs no model still ran
        assert {r.kind for r in idx.catalog.labels_of(rec.key)} <= {"colour", "style", "scene"}


def test_build_stages_lists_the_labellers_and_options_turn_them_off():
    names = [st.name for st in build_stages(IndexOptions())]
    assert names.index("objects") < names.index("faces") < names.index("ocr") < names.index("picture")
    off = [st.name for st in build_stages(IndexOptions(objects=False, faces=False, picture=False))]
    assert not {"objects", "faces", "picture"} & set(off)


@pytest.mark.skipif(not human_models.available(), reason="converted models absent: run scripts/human-models-onnx.sh")
def test_real_models_on_a_photograph(visual_image):
    from PIL import Image

    rgb = np.asarray(Image.open(visual_image).convert("RGB"))
    found = human_models.detect_objects(rgb)
    assert found and found[0][0] == "person" and found[0][1] >= 0.3, found
    from indexer.stages.faces import _detect, _read

    faces = _detect(rgb)
    assert len(faces) == 1 and faces[0][4] >= 0.9
    r = _read(human_models.face_crop(rgb, faces[0][:4]))
    # FaceRes reads her age (about 60 here; she was 78) but calls her male at 0.93: gender
    # readings are measured against hand labels before any is shown (benchmarks suite labels)
    assert r["age"] >= 45 and r["emotion"] == "neutral" and r["descriptor"].shape == (1024,)


def test_search_over_the_api_carries_the_seen_line(labelled):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    idx_dir, dogs, _ = labelled
    with TestClient(create_app(idx_dir, Settings(rate=0, warm_models=False))) as c:
        r = c.get("/v1/search", params={"q": "a smiling woman with her dog", "k": 3, "min_confidence": "low"})
        assert r.status_code == 200, r.text
        top = r.json()["hits"][0]
        assert top["source"] == str(dogs) and "woman" in top["seen"]


def test_faces_are_searched_only_beside_a_person_tall_enough_to_show_one():
    from indexer.stages.base import Work
    from engine.config import IndexConfig

    calls = []

    def detect(rgb):
        calls.append(rgb.shape)
        return one_face(rgb)

    work = Work(source="x", content_hash="h", config=IndexConfig(), options=IndexOptions())
    frame = np.zeros((200, 200, 3), np.uint8)
    work.frames = [(0.0, frame), (1.0, frame), (2.0, frame)]
    work.frame_labels = {0.0: [("object", "person", 0.9, (0.1, 0.1, 0.5, 0.9))],  # tall: searched
                         1.0: [("object", "person", 0.9, (0.1, 0.1, 0.15, 0.2))],  # a far figure: not
                         2.0: [("object", "dog", 0.9, (0.1, 0.1, 0.5, 0.9))]}  # no person: not
    FacesStage(detect, smiling_woman).run(work)
    assert len(calls) == 1 and list(work.faces) == [0.0]
    assert work.stats["faces"] == {"frames_scanned": 1, "faces": 1}


def test_concept_bank_reads_where_a_query_is():
    def scenes(q):
        return [lab for c in find_concepts(q) for lab in c.labels if lab[0] == "scene"]

    assert scenes("a man dancing in a kitchen") == [("scene", "indoor", 0.7)]
    assert scenes("kids playing outdoors") == [("scene", "outdoor", 1.0)]
    assert scenes("people walking outside on a lawn") == [("scene", "outdoor", 1.0)]  # one place concept
    assert scenes("a dark room") == [("scene", "dark", 1.0), ("scene", "indoor", 0.7)]
    assert scenes("a dark green shirt in a bright living room") == [("scene", "indoor", 0.7)]  # not a dark scene
    assert scenes("a dog on a sofa") == []


def test_a_figure_made_of_something_is_not_a_person():
    def who(q):
        return [lab for c in find_concepts(q) for lab in c.labels if lab[0] in ("face", "people")]

    assert who("a gingerbread man on a plate") == []
    assert who("kids building a snow man") == [("face", "child", 1.0)]  # the kids are people, the snow man not
    assert who("a clay woman and a plastic baby") == []
    assert who("a woman holding a baby") == [("face", "woman", 1.0), ("face", "baby", 1.0), ("face", "child", 0.7)]
