"""Actions from pose (issue 15): the geometry rules on poses with a known answer, the
real MoveNet model on a rendered figure, the stage's labels in the catalog, the concept
bank's verbs, the ``action:`` filter, and a missing model degrading to a warning."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.index import VideoIndex
from indexer import pose
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from indexer.stages import build_stages
from indexer.stages.objects import ObjectsStage
from indexer.stages.pose import PoseStage
from query.concepts import describe, find_concepts
from query.filters import labels_pass
from query.parse import parse
from query.planner import Searcher, SearchOptions
from tests import synth

OPTS = IndexOptions(speech=False, ocr=False, graph=False, timeline=False, faces=False, pose=True)


def person(**points) -> pose.Person:
    """A pose from named keypoints ``name=(x, y)`` (score 0.9; the rest unseen)."""
    pts = np.zeros((17, 3), np.float32)
    for name, (x, y) in points.items():
        pts[pose.KEYPOINTS.index(name)] = (x, y, 0.9)
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    return pose.Person(pts, (min(xs), min(ys), max(xs), max(ys)), 0.8)


# a person standing, 100 px between the shoulders, upright torso of 150 px
BODY = dict(nose=(200, 60), left_shoulder=(250, 120), right_shoulder=(150, 120), left_hip=(235, 270),
            right_hip=(165, 270), left_knee=(235, 370), right_knee=(165, 370))


def names(*people) -> set[str]:
    return {a for a, _, _ in pose.actions(list(people))}


def test_actions_from_poses_with_a_known_answer():
    down = dict(left_elbow=(260, 190), right_elbow=(140, 190), left_wrist=(262, 260), right_wrist=(138, 260))
    assert names(person(**BODY, **down)) == set()  # standing, arms down: nothing to say
    up = dict(left_elbow=(280, 60), right_elbow=(120, 60), left_wrist=(285, 0), right_wrist=(115, 0))
    assert names(person(**BODY, **up)) == {"arms raised"}
    elbows_up = dict(left_elbow=(280, 60), right_elbow=(120, 60))  # wrists unseen (motion blur)
    assert names(person(**BODY, **elbows_up)) == {"arms raised"}
    out = dict(left_elbow=(330, 125), right_elbow=(70, 125), left_wrist=(410, 118), right_wrist=(-10, 118))
    assert names(person(**BODY, **out)) == {"arms out"}
    sip = dict(left_elbow=(260, 190), right_elbow=(140, 190), left_wrist=(262, 260), right_wrist=(205, 75))
    assert names(person(**BODY, **sip)) == {"hand to face"}
    seated = {**BODY, "left_knee": (320, 275), "right_knee": (250, 280)}  # thighs level with the hips
    assert names(person(**seated, **down)) == {"sitting"}
    lying = dict(nose=(40, 300), left_shoulder=(100, 280), right_shoulder=(100, 320), left_hip=(260, 285),
                 right_hip=(260, 318))
    assert names(person(**lying)) == {"lying"}
    # a rule never rests on a keypoint the model is unsure of
    unsure = person(**BODY, **up)
    unsure.points[pose.KEYPOINTS.index("left_wrist"), 2] = 0.1
    unsure.points[pose.KEYPOINTS.index("left_elbow"), 2] = 0.1
    assert names(unsure) == set()


def test_two_people_in_contact_are_together_and_two_apart_are_not():
    a = person(nose=(200, 60), left_shoulder=(250, 120), right_shoulder=(150, 120), left_wrist=(330, 200),
               left_hip=(235, 270), right_hip=(165, 270))
    b = person(nose=(400, 60), left_shoulder=(450, 120), right_shoulder=(350, 120), right_wrist=(340, 205),
               left_hip=(435, 270), right_hip=(365, 270))
    b = pose.Person(b.points, (300.0, 60.0, 450.0, 270.0), 0.8)  # the bodies overlap
    a = pose.Person(a.points, (150.0, 60.0, 340.0, 270.0), 0.8)
    assert "together" in names(a, b)
    far = pose.Person(b.points + np.array([600, 0, 0], np.float32), (900.0, 60.0, 1050.0, 270.0), 0.8)
    assert "together" not in names(a, far)


def test_the_concept_bank_reads_verbs_as_actions():
    def acts(q):
        return {lab for c in find_concepts(q) for k, lab, _ in c.labels if k == "action"}

    assert acts("a model raising both fists") == {"arms raised"}
    assert acts("person taking a drink") == {"hand to face"}
    assert acts("woman holding a finger to her lips") == {"hand to face"}
    assert acts("two people arm wrestling") == {"together"}
    assert acts("yoga on a rooftop with arms stretched out") == {"arms out", "arms raised"}
    assert acts("a cat on the sofa") == set()
    f = parse("people action:arms-raised -action:sitting").filters
    assert f.labels == ("action:arms raised",) and f.exclude_labels == ("action:sitting",)
    assert parse("action:hugging").filters.labels == ("action:together",)
    with pytest.raises(Exception, match="did you mean 'lying'"):
        parse("action:flying")
    assert labels_pass({("action", "arms raised"): 0.6}, parse("action:arms-raised"))
    assert not labels_pass({("action", "arms raised"): 0.3}, parse("action:arms-raised"))  # below the shown score
    assert describe({("people", "1"): 0.8, ("action", "arms raised"): 0.6}) == "1 person, arms raised"
    # actions are evidence for filters and the "seen" line, not for ranking (measured)
    from query.concepts import add_evidence

    assert add_evidence(find_concepts("a man raising both fists"), 1.0, {1: 0.5},
                        {1: {("action", "arms raised"): 0.9}}, (10, {})) == {1: 0.5}


def _figure(arms_up: bool, size=(640, 480)) -> np.ndarray:
    """A drawn person (head, torso, arms, legs) on a plain wall, arms up or down."""
    import cv2

    w, h = size
    img = np.full((h, w, 3), (200, 210, 190), np.uint8)
    cx, sw, sh_y = w // 2, 50, 150
    skin, shirt, trousers = (224, 172, 140), (40, 90, 200), (50, 50, 60)
    cv2.rectangle(img, (cx - sw, sh_y), (cx + sw, 290), shirt, -1)
    for s in (-1, 1):
        cv2.line(img, (cx + s * 25, 290), (cx + s * 30, 370), trousers, 26)
        cv2.line(img, (cx + s * 30, 370), (cx + s * 30, 450), trousers, 24)
        elbow = (cx + s * (sw + 30), sh_y - 50) if arms_up else (cx + s * (sw + 10), sh_y + 70)
        wrist = (cx + s * (sw + 35), sh_y - 130) if arms_up else (cx + s * (sw + 10), sh_y + 140)
        cv2.line(img, (cx + s * sw, sh_y + 10), elbow, shirt, 24)
        cv2.line(img, elbow, wrist, skin, 20)
        cv2.circle(img, wrist, 14, skin, -1)
    cv2.rectangle(img, (cx - 12, 120), (cx + 12, sh_y), skin, -1)
    cv2.ellipse(img, (cx, 90), (34, 42), 0, 0, 360, skin, -1)
    cv2.ellipse(img, (cx, 65), (36, 22), 0, 180, 360, (60, 40, 30), -1)
    for dx in (-13, 13):
        cv2.circle(img, (cx + dx, 85), 5, (40, 30, 30), -1)
    return img


@pytest.mark.skipif(not pose.available(), reason="converted pose model absent: run scripts/human-models-onnx.sh")
def test_real_pose_model_on_a_rendered_figure():
    up = pose.poses(_figure(True))
    assert up and up[0].score >= pose.MIN_PERSON
    p = up[0]
    nose, ls, rs = p.at("nose"), p.at("left_shoulder"), p.at("right_shoulder")
    assert nose and ls and rs
    assert 290 <= nose[0] <= 350 and 50 <= nose[1] <= 130  # the drawn head
    assert nose[1] < min(ls[1], rs[1]) and rs[0] < 320 < ls[0]  # upright, facing the camera
    assert "arms raised" in {a for a, _, _ in pose.actions(up)}
    assert "arms raised" not in {a for a, _, _ in pose.actions(pose.poses(_figure(False)))}


def _one_person(rgb):
    h, w = rgb.shape[:2]
    return [("person", 0.9, (w * 0.3, 0, w * 0.7, h))]


def test_the_pose_stage_writes_action_labels_that_search_and_filters_use(tmp_path, tools):
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    calls: list[int] = []

    def cheering(rgb):
        calls.append(1)
        h, w = rgb.shape[:2]
        return [("arms raised", 0.7, (w * 0.3, 0, w * 0.7, h)), ("hand to face", 0.2, (0, 0, 1, 1))]

    stages = [ObjectsStage(_one_person) if st.name == "objects" else PoseStage(cheering) if st.name == "pose"
              else st for st in build_stages(OPTS)]
    assert "pose" in [st.name for st in stages]
    r = index_paths([str(clip)], tmp_path / "idx", options=OPTS, stages=stages)
    assert [x.status for x in r.results] == ["indexed"] and calls
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(clip))
        rows = [x for x in idx.catalog.labels_of(rec.key) if x.kind == "action"]
        assert {x.label for x in rows} == {"arms raised"}  # below MIN_ACTION: not a label
        assert all(x.box is not None and 0.25 <= x.box[0] <= 0.35 for x in rows)
        s = Searcher(idx)
        hits = s.search("action:arms-raised", options=SearchOptions(k=5, min_confidence="low")).hits
        assert [h.source for h in hits] == [str(clip)] and "arms raised" in hits[0].seen
        assert s.search("action:sitting", options=SearchOptions(k=5, min_confidence="low")).hits == []


def test_the_pose_stage_skips_frames_without_a_person(tmp_path, tools):
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    calls: list[int] = []

    def never(rgb):
        calls.append(1)
        return []

    stages = [ObjectsStage(lambda rgb: [("dog", 0.9, (0, 0, 10, 10))]) if st.name == "objects"
              else PoseStage(never) if st.name == "pose" else st for st in build_stages(OPTS)]
    index_paths([str(clip)], tmp_path / "idx", options=OPTS, stages=stages)
    assert calls == []


def test_without_the_pose_model_the_stage_warns_and_the_rest_runs(tmp_path, tools, monkeypatch, caplog):
    import indexer.stages.pose as pose_stage

    monkeypatch.setenv("VIDSEEK_HUMAN_MODELS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(pose_stage, "_warned", [])
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    stages = [ObjectsStage(_one_person) if st.name == "objects" else st for st in build_stages(OPTS)]
    with caplog.at_level(logging.WARNING, logger="vidseek.indexer"):
        r = index_paths([str(clip)], tmp_path / "idx", options=OPTS, stages=stages)
    assert [x.status for x in r.results] == ["indexed"]
    assert any("pose labels off" in m and "human-models-onnx.sh" in m for m in caplog.messages)
    with VideoIndex.open(tmp_path / "idx") as idx:
        rec = idx.catalog.find_by_source(str(clip))
        assert "pose: model not installed" in rec.stats.get("skipped_stages", [])
        assert ("object", "person") in {(x.kind, x.label) for x in idx.catalog.labels_of(rec.key)}
    assert "pose" not in [st.name for st in build_stages(IndexOptions())]  # opt-in
