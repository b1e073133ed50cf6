"""One copy of each vector (issue 17): the catalog's per-modality rows are a pending copy,
pruned once the vector store saved them; everything that read them still gets them."""
from __future__ import annotations

import os
import shutil
import sqlite3
import textwrap

import numpy as np
import pytest

import engine.index as index_mod
from engine.config import IndexConfig
from engine.errors import CorruptIndexError
from engine.index import VideoIndex
from engine.vectors import SearchParams
from tests.test_index import ENC, kill_writer_after, make_video, open_writer


@pytest.fixture
def no_retention(monkeypatch):
    monkeypatch.setattr(index_mod, "VECTOR_RETENTION_S", 0.0)


def _rows(path) -> dict[str, int]:
    with sqlite3.connect(path / "catalog.sqlite") as c:
        return dict(c.execute("SELECT modality, COUNT(*) FROM vectors GROUP BY modality").fetchall())


def _originals(i: int, nseg: int = 3) -> list[dict[str, np.ndarray]]:
    return [s.vectors for s in make_video(i, nseg).segments]


def test_saved_vectors_leave_the_catalog_and_read_back_from_the_store(tmp_path, no_retention):
    with open_writer(tmp_path) as idx:
        recs = [idx.add_video(make_video(i)) for i in range(6)]
        assert _rows(tmp_path) == {}, "saved rows should have been pruned"
        ids = [s.id for r in recs for s in idx.catalog.segments_of(r.key)]
        via_catalog = idx.catalog.vectors_many(ids, ["visual", "speech", "ocr"])
        via_index = idx.modality_vectors(ids, ["visual", "speech", "ocr"])
        want = [v for i in range(6) for v in _originals(i)]
        for m in ("visual", "speech"):
            for sid, vecs in zip(ids, want):
                np.testing.assert_allclose(via_catalog[m][sid], vecs[m], atol=1e-6)  # Flat shards: exact
                np.testing.assert_allclose(via_index[m][sid], vecs[m], atol=1e-6)
        assert via_catalog["ocr"] == {} and via_index["ocr"] == {}
        assert idx.catalog.vectors(ids[:2], "visual").keys() == set(ids[:2])
    # a reopened reader reads the same through the store
    with VideoIndex.open(tmp_path) as r:
        got = r.catalog.vectors(ids, "speech")
        for sid, vecs in zip(ids, want):
            np.testing.assert_allclose(got[sid], vecs["speech"], atol=1e-6)


def test_rows_stay_within_the_retention_window_and_for_unstored_modalities(tmp_path):
    cfg = IndexConfig(shards=2, flat_max=1000, block_weights={"visual": 1.0, "speech": 0.0, "ocr": 1.0,
                                                               "metadata": 1.0})
    with VideoIndex.open(tmp_path, writer=True, config=cfg, encoders=ENC) as idx:
        idx.add_video(make_video(0))
        assert _rows(tmp_path) == {"visual": 3, "speech": 3}  # within VECTOR_RETENTION_S: kept
        assert idx.prune_vectors(retention_s=0) == 3
        assert _rows(tmp_path) == {"speech": 3}  # weight 0: the store holds no copy, the catalog keeps it
        segs = idx.catalog.segments_of(idx.catalog.list_videos()[0].key)
        got = idx.modality_vectors([s.id for s in segs], ["visual", "speech"])
        assert set(got["visual"]) == set(got["speech"]) == {s.id for s in segs}


def test_a_lossy_factory_keeps_the_catalog_rows(tmp_path, no_retention):
    cfg = IndexConfig(shards=1, flat_max=20, approx_factory="IVF{nlist},PQ4x4")
    with VideoIndex.open(tmp_path, writer=True, config=cfg, encoders=ENC) as idx:
        for i in range(12):
            idx.add_video(make_video(i))
        assert _rows(tmp_path) == {"visual": 36, "speech": 36}


def test_a_reader_behind_the_prune_mark_reloads_the_saved_store(tmp_path, no_retention):
    with open_writer(tmp_path) as w:
        w.add_video(make_video(0))
        reader = VideoIndex.open(tmp_path)
        try:
            old_store = reader.vectors
            recs = [w.add_video(make_video(i)) for i in range(1, 5)]
            assert w.catalog.vector_prune_seq() > reader.seq  # the rows it would replay are gone
            reader.sync()  # nothing left to replay: it loads the saved state
            assert reader.seq == w.catalog.max_seq()
            assert reader.vectors is not old_store
            assert reader.vectors.count() == w.vectors.count() == 15
            q = w.joint_vector({"visual": _originals(3)[1]["visual"]})
            _s, ids = reader.search_vectors(q[None, :], SearchParams(k=1))
            seg3 = [s.id for s in w.catalog.segments_of(recs[2].key)]
            assert int(ids[0, 0]) == seg3[1]
        finally:
            reader.close()


def test_a_store_older_than_the_prune_mark_is_refused(tmp_path, no_retention):
    with open_writer(tmp_path) as w:
        w.add_video(make_video(0))
    shutil.copytree(tmp_path / "vectors", tmp_path.parent / "vectors-backup")
    with open_writer(tmp_path) as w:
        w.add_video(make_video(1))
    shutil.rmtree(tmp_path / "vectors")
    shutil.copytree(tmp_path.parent / "vectors-backup", tmp_path / "vectors")
    with pytest.raises(CorruptIndexError, match="older than the catalog"):
        open_writer(tmp_path)


def test_an_index_of_the_old_layout_opens_and_moves_to_one_copy(tmp_path, monkeypatch):
    """An index written before schema_vectors (every row kept, no vector_prune table) opens
    with a reader as before once a writer migrated it; the writer prunes the saved rows."""
    with open_writer(tmp_path) as w:
        recs = [w.add_video(make_video(i)) for i in range(4)]
    with sqlite3.connect(tmp_path / "catalog.sqlite") as c:  # back to the previous schema
        c.execute("DROP TABLE vector_prune")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        c.execute(f"PRAGMA user_version = {version - 1}")
    assert _rows(tmp_path) == {"visual": 12, "speech": 12}
    monkeypatch.setattr(index_mod, "VECTOR_RETENTION_S", 0.0)
    with open_writer(tmp_path) as w:  # migrates, then prunes what the store saved
        assert _rows(tmp_path) == {}
        assert w.catalog.vector_prune_seq() == w.catalog.max_seq()
    with VideoIndex.open(tmp_path) as r:
        ids = [s.id for rec in recs for s in r.catalog.segments_of(rec.key)]
        got = r.modality_vectors(ids, ["visual"])["visual"]
        for sid, vecs in zip(ids, [v for i in range(4) for v in _originals(i)]):
            np.testing.assert_allclose(got[sid], vecs["visual"], atol=1e-6)


def test_an_unsaved_commit_replays_from_its_pending_rows(tmp_path, no_retention):
    with open_writer(tmp_path) as w:
        w.add_video(make_video(0))
        w.add_video(make_video(1), save=False)  # committed; the store is not saved
        assert _rows(tmp_path) == {"visual": 3, "speech": 3}  # video 1's rows: pending
        seq = w.catalog.max_seq()
        os.close(w._lock_fd)  # "crash": drop the handle without flushing
        w._lock_fd = None
        w.writer = False
    with open_writer(tmp_path) as w:
        assert w.vectors.count() == 6 and w.vectors.applied_seq == seq
        assert _rows(tmp_path) == {}


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import engine.index
    engine.index.VECTOR_RETENTION_S = 0.0
    from tests.test_index import open_writer, make_video
    idx = open_writer({path!r})
    i = 100
    while True:
        idx.add_video(make_video(i, nseg=4))
        print(i, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("delay_lines", [2, 5])
def test_kill_while_pruning_leaves_every_committed_video_searchable(tmp_path, delay_lines, no_retention):
    kill_writer_after(_CHILD, tmp_path, delay_lines)
    with open_writer(tmp_path) as idx:
        counts = idx.catalog.counts()
        assert counts["segments"] == 4 * counts["videos"] >= 4 * delay_lines
        assert idx.vectors.count() == counts["segments"]
        for v in idx.catalog.list_videos():
            segs = idx.catalog.segments_of(v.key)
            i = int(v.source[8:-4])
            got = idx.modality_vectors([s.id for s in segs], ["visual"])["visual"]
            for s, want in zip(segs, _originals(i, 4)):
                np.testing.assert_allclose(got[s.id], want["visual"], atol=1e-6)


def test_a_bulk_prune_keeps_recent_and_unstored_rows(tmp_path, monkeypatch):
    """Many ops at once (an old index's first writer open) take the copy-and-drop path:
    the same rows go as with the row-wise prune, the table keeps its constraints."""
    import engine.catalog.store as store_mod

    cfg = IndexConfig(shards=2, flat_max=1000, block_weights={"visual": 1.0, "speech": 0.0, "ocr": 1.0,
                                                               "metadata": 1.0})
    with VideoIndex.open(tmp_path, writer=True, config=cfg, encoders=ENC) as idx:
        recs = [idx.add_video(make_video(i)) for i in range(5)]
        monkeypatch.setattr(store_mod, "BULK_PRUNE_OPS", 2)
        cutoff = idx.catalog.ops_since(0)
        seqs = [op.seq for op in cutoff]
        seq, deleted = idx.catalog.prune_vectors(seqs[2], ["visual"])  # ops 1..3: bulk path
        assert (seq, deleted) == (seqs[2], 9)
        assert _rows(tmp_path) == {"visual": 6, "speech": 15}
        with pytest.raises(sqlite3.IntegrityError):  # UNIQUE (segment, modality) is back
            seg = idx.catalog.segments_of(recs[4].key)[0].id
            idx.catalog._conn().execute("INSERT INTO vectors (segment, modality, data) VALUES (?, 'visual', x'00')",
                                        (seg,))
        idx.delete_video(recs[4].video_id)  # ON DELETE CASCADE is back too
        assert _rows(tmp_path) == {"visual": 3, "speech": 12}


def test_the_cover_service_reads_pruned_vectors_through_the_index(tmp_path, no_retention):
    from indexer.covers.service import CoverService

    with open_writer(tmp_path) as w:
        rec = w.add_video(make_video(0))
    with VideoIndex.open(tmp_path) as r:
        ids = [s.id for s in r.catalog.segments_of(rec.key)]
        bare = CoverService(tmp_path)
        wired = CoverService(tmp_path, vector_source=r.modality_vectors)
        try:
            assert bare.catalog.vectors(ids, "visual") == {}  # the catalog alone no longer has them
            got = wired.catalog.vectors(ids, "visual")
            for sid, want in zip(ids, _originals(0)):
                np.testing.assert_allclose(got[sid], want["visual"], atol=1e-6)
        finally:
            bare.close()
            wired.close()
