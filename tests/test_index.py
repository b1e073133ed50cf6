"""The index directory as a whole: commit point, replay, readers, locks, manifest checks."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine.catalog import NewSegment, NewVideo
from engine.config import IndexConfig, load_config
from engine.errors import IndexLockedError, IndexMismatchError, InputError, NotFoundError
from engine.index import VideoIndex
from engine.models.base import EncoderInfo
from engine.vectors import SearchParams, VectorSettings

DIM = 8
ENC = {"text": EncoderInfo("fake-text", "text", DIM, "1"), "image": EncoderInfo("fake-image", "image", DIM, "1")}
CFG = IndexConfig(shards=2, flat_max=1000)


def _unit(rng, n=DIM):
    v = rng.normal(size=n).astype(np.float32)
    return v / np.linalg.norm(v)


WORDS = ["apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel"]


def word(i: int) -> str:
    """A token unique to video i (the tokenizer splits letters from digits)."""
    return WORDS[i % 8] + "x" * (i // 8)


def make_video(i: int, nseg: int = 3, words: str | None = None) -> NewVideo:
    rng = np.random.default_rng(i)
    segs = [
        NewSegment(
            start=2.0 * j, end=2.0 * j + 2.0, transcript=words or f"{word(i)} segment talk",
            vectors={"visual": _unit(rng), "speech": _unit(rng)},
            keyframes=[(2.0 * j + 1.0, [["thing", 0.5]], None)],
        )
        for j in range(nseg)
    ]
    return NewVideo(source=f"/media/v{i}.mp4", content_hash=f"hash{i}", shots=[(0.0, 2.0 * nseg)], segments=segs)


def open_writer(path):
    return VideoIndex.open(path, writer=True, config=CFG, encoders=ENC)


def test_add_search_delete_roundtrip(tmp_path):
    with open_writer(tmp_path) as idx:
        recs = [idx.add_video(make_video(i)) for i in range(5)]
        assert idx.dim == 4 * DIM
        seg = idx.catalog.segments_of(recs[2].key)[1]
        parts = {m: v[seg.id] for m in ("visual", "speech") for v in [idx.catalog.vectors([seg.id], m)]}
        q = idx.joint_vector(parts)
        scores, ids = idx.search_vectors(q[None], SearchParams(k=3))
        assert ids[0][0] == seg.id
        assert {h.id for h in idx.lexical.search(word(2), k=10)} == {
            s.id for s in idx.catalog.segments_of(recs[2].key)
        }
        idx.delete_video(recs[2].video_id)
        scores, ids = idx.search_vectors(q[None], SearchParams(k=15))
        assert seg.id not in set(ids[0].tolist())
        assert idx.lexical.search(word(2), k=10) == []
        assert idx.vectors.count() == 12


def test_reader_replays_ops_the_derived_indexes_missed(tmp_path):
    with open_writer(tmp_path) as idx:
        idx.add_video(make_video(0))
        # Commit to the catalog only (as if the process died before saving vectors/BM25).
        idx.catalog.add_video(make_video(1))
        idx.flush()  # saves derived state still at the old seq
    reader = VideoIndex.open(tmp_path)
    assert reader.vectors.count() == 6  # vectors replay in the reader's memory
    want = {s.id for s in reader.catalog.segments_of(reader.catalog.find_by_source("/media/v1.mp4").key)}
    # ... and so does BM25: the reader finds the unsaved video without a writer.
    assert {h.id for h in reader.lexical.search(word(1), k=10)} == want
    assert reader.lexical.count() == 6
    derived = reader.info()["derived"]
    assert derived["current"] is False and derived["replayed_in_memory"] == {"after_seq": 1, "to_seq": 2}
    assert derived["serving_seq"] == {"vectors": 2, "lexical": 2}
    reader.close()
    assert json.loads((tmp_path / "lexical" / "lexical.json").read_text())["applied_seq"] == 1  # nothing written
    with open_writer(tmp_path) as w:  # a writer saves the replay
        assert {h.id for h in w.lexical.search(word(1), k=10)} == want
        assert w.info()["derived"]["current"] is True
    with VideoIndex.open(tmp_path) as reader:
        assert {h.id for h in reader.lexical.search(word(1), k=10)} == want
        assert reader.vectors.count() == 6 and reader.lexical.count() == 6
        assert reader.info()["derived"]["replayed_in_memory"] is None


def test_reader_replays_unsaved_deletes_and_replacements_in_memory(tmp_path):
    """The in-memory tail hides saved docs it replaces or deletes, and a reader that
    stays open catches up when a writer saves (its tail is dropped, not doubled)."""
    with open_writer(tmp_path) as w:
        recs = [w.add_video(make_video(i)) for i in range(3)]
        w.catalog.delete_video(recs[0].video_id)  # unsaved delete
        w.catalog.add_video(make_video(3))  # unsaved add
        w.catalog.add_video(make_video(4, words="zebra crossing"), replace_keys=[recs[1].key])  # unsaved replace
        # the catalog's own calls do not sync: close() saves the derived state at seq 3
    saved = tmp_path / "lexical" / "lexical.json"
    with VideoIndex.open(tmp_path) as r:
        assert json.loads(saved.read_text())["applied_seq"] == 3  # the reader wrote nothing
        assert r.lexical.search(word(0), k=10) == []  # deleted
        assert r.lexical.search(word(1), k=10) == []  # replaced
        v4 = r.catalog.find_by_source("/media/v4.mp4")
        assert {h.id for h in r.lexical.search("zebra", k=10)} == {s.id for s in r.catalog.segments_of(v4.key)}
        assert len(r.lexical.search(word(3), k=10)) == 3
        assert r.lexical.count() == r.catalog.counts()["segments"] == r.vectors.count() == 9
        # a writer opens (and saves the replay) while this reader stays open, then adds one more
        with open_writer(tmp_path) as w:
            w.add_video(make_video(5))
        assert r.sync() == 1
        assert r.lexical.count() == 12 and len(r.lexical.search(word(3), k=10)) == 3
        assert r.info()["derived"]["current"] is True


def test_reader_sees_new_videos_after_sync_without_reopen(tmp_path):
    w = open_writer(tmp_path)
    w.add_video(make_video(0))
    r = VideoIndex.open(tmp_path)
    assert r.vectors.count() == 3
    w.add_video(make_video(1))
    w.delete_video(w.catalog.find_by_source("/media/v0.mp4").video_id)
    assert r.sync() == 2
    assert r.vectors.count() == 3
    assert r.lexical.search(word(0), k=5) == []
    r.close()
    w.close()


def test_second_writer_is_refused(tmp_path):
    w = open_writer(tmp_path)
    with pytest.raises(IndexLockedError):
        open_writer(tmp_path)
    w.close()
    open_writer(tmp_path).close()


def test_reader_cannot_write(tmp_path):
    open_writer(tmp_path).close()
    r = VideoIndex.open(tmp_path)
    with pytest.raises(IndexLockedError):
        r.add_video(make_video(0))
    r.close()


def test_encoder_mismatch_names_what_differs(tmp_path):
    open_writer(tmp_path).close()
    other = dict(ENC, text=EncoderInfo("fake-text", "text", 16, "1"))
    with pytest.raises(IndexMismatchError, match="text encoder dim: index has 8, requested 16"):
        VideoIndex.open(tmp_path, writer=True, encoders=other)
    with pytest.raises(IndexMismatchError, match="shards"):
        VideoIndex.open(tmp_path, writer=True, config=IndexConfig(shards=3, flat_max=1000), encoders=ENC)


def test_vector_shape_mismatch_is_rejected_before_commit(tmp_path):
    with open_writer(tmp_path) as idx:
        bad = make_video(0)
        bad.segments[0].vectors["visual"] = np.ones(DIM + 1, np.float32)
        with pytest.raises(IndexMismatchError):
            idx.add_video(bad)
        assert idx.catalog.counts()["videos"] == 0


def test_open_missing_index(tmp_path):
    with pytest.raises(NotFoundError):
        VideoIndex.open(tmp_path / "nope")


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.test_index import open_writer, make_video
    idx = open_writer({path!r})
    i = 100
    while True:
        idx.add_video(make_video(i, nseg=4))
        print(i, flush=True)
        i += 1
    """
)


def kill_writer_after(child: str, path, lines: int) -> None:
    """Create the index at ``path``, run ``child`` (a script with ``{root}`` and
    ``{path}`` to fill in) in a fresh interpreter on it, read ``lines`` lines of its
    output, then SIGKILL it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    open_writer(path).close()
    proc = subprocess.Popen([sys.executable, "-c", child.format(root=root, path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(lines):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("delay_lines", [1, 3, 6])
def test_kill_during_ingest_leaves_a_consistent_index(tmp_path, delay_lines):
    """SIGKILL a writer mid-stream; every committed video is fully searchable and
    nothing of an uncommitted one is visible."""
    kill_writer_after(_CHILD, tmp_path, delay_lines)
    with open_writer(tmp_path) as idx:
        counts = idx.catalog.counts()
        assert counts["videos"] >= delay_lines
        assert counts["segments"] == 4 * counts["videos"]
        assert idx.vectors.count() == counts["segments"]
        assert idx.lexical.count() == counts["segments"]
        for v in idx.catalog.list_videos():
            segs = idx.catalog.segments_of(v.key)
            found = {h.id for h in idx.lexical.search(word(int(v.source[8:-4])), k=50)}
            assert found == {s.id for s in segs}


@pytest.mark.parametrize("factory, exact_store", [
    (None, True),                                  # Flat shards: the store's copy is exact
    ("IVF{nlist},PQ4x4fs,Refine(SQfp16)", True),   # fp16 refine stage: read back, rounded
    ("IVF{nlist},PQ4x4", False),                   # lossy codes: the catalog answers
])
def test_modality_vectors_match_the_catalog(tmp_path, factory, exact_store):
    cfg = CFG if factory is None else IndexConfig(shards=2, flat_max=20, approx_factory=factory)
    with VideoIndex.open(tmp_path, writer=True, config=cfg, encoders=ENC) as idx:
        recs = [idx.add_video(make_video(i, nseg=4)) for i in range(30)]
        idx.delete_video(recs[3].video_id)
        ids = [s.id for r in recs[:6] if r is not recs[3] for s in idx.catalog.segments_of(r.key)]
        assert (idx.vectors.stored_vectors(np.array(ids)) is not None) == exact_store
        want = idx.catalog.vectors_many(ids + [10**9], ["visual", "speech", "ocr"])
        got = idx.modality_vectors(ids + [10**9], ["visual", "speech", "ocr"])
        assert got["ocr"] == {} and set(got["visual"]) == set(want["visual"]) == set(ids)
        for m in ("visual", "speech"):
            for i in ids:
                np.testing.assert_allclose(got[m][i], want[m][i], atol=2e-3 if factory else 1e-6)


# -- vector settings: one definition for the TOML config, the manifest and the store ------------
OLD_CONFIG_KEYS = {"text_encoder", "image_encoder", "image_options", "shards", "flat_max", "approx_factory",
                   "use_gpu", "block_weights"}


def test_every_vector_setting_has_an_index_config_key():
    config_keys = {f.name for f in dataclasses.fields(IndexConfig)}
    assert set(VectorSettings.config_names()) == {f.name for f in dataclasses.fields(VectorSettings)} - {"dim"}
    assert set(VectorSettings.config_names().values()) <= config_keys
    defaults = VectorSettings(dim=4 * DIM)
    assert IndexConfig().vector_settings(4 * DIM) == defaults
    assert VectorSettings.from_config(defaults.to_config(), 4 * DIM) == defaults
    assert VectorSettings.from_dict(defaults.to_dict()) == defaults


def test_vector_settings_round_trip_from_a_toml_config(tmp_path):
    """train_sample, compact_ratio and extra (k_factor, nprobe, retrain_growth) could not
    be set from a config before: each reaches the opened store and survives reopening."""
    toml = tmp_path / "index.toml"
    toml.write_text(textwrap.dedent("""
        [index]
        shards = 2
        flat_max = 1000
        train_sample = 5000
        compact_ratio = 0.5
        vector_extra = { k_factor = 12, nprobe = 7, retrain_growth = 4.0 }
    """))
    cfg = load_config(toml)
    want = VectorSettings(dim=4 * DIM, num_shards=2, flat_max=1000, train_sample=5000, compact_ratio=0.5,
                          extra={"k_factor": 12, "nprobe": 7, "retrain_growth": 4.0})
    folder = tmp_path / "idx"
    with VideoIndex.open(folder, writer=True, config=cfg, encoders=ENC) as idx:
        assert idx.vectors.settings == want
        idx.add_video(make_video(0))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["train_sample"] == 5000
    assert manifest["config"]["vector_extra"] == {"k_factor": 12, "nprobe": 7, "retrain_growth": 4.0}
    assert json.loads((folder / "vectors" / "manifest.json").read_text())["settings"] == want.to_dict()
    with VideoIndex.open(folder) as reader:
        assert reader.vectors.settings == want
        assert reader.config == cfg
    with VideoIndex.open(folder, writer=True, encoders=ENC) as again:
        assert again.vectors.settings == want


def test_bad_vector_settings_in_a_config_are_refused(tmp_path):
    for line, what in [("compact_ratio = 2.0", "compact_ratio"), ("train_sample = 0", "train_sample"),
                       ("vector_extra = { nprobe = 0 }", "nprobe"), ("shards = 1000", "shards"),
                       ("compact_ratio = \"x\"", "compact_ratio")]:
        toml = tmp_path / "bad.toml"
        toml.write_text(f"[index]\n{line}\n")
        with pytest.raises(InputError, match=what):
            load_config(toml)


def test_an_index_built_with_default_settings_keeps_its_manifest_shape(tmp_path):
    """Defaults write the config keys an index always had, and such a manifest opens with
    the store settings it was built with (the later settings at their defaults)."""
    with open_writer(tmp_path) as idx:
        idx.add_video(make_video(0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["config"]) == OLD_CONFIG_KEYS
    with VideoIndex.open(tmp_path) as reader:
        assert reader.vectors.settings == VectorSettings(dim=4 * DIM, num_shards=2, flat_max=1000)
        assert reader.vectors.count() == 3
