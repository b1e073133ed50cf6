"""Catalog: schema, all-or-nothing ingest transactions, dedup keys, op log, deletes."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.catalog import Catalog, NewSegment, NewVideo, make_video_id
from engine.catalog.schema import SCHEMA_VERSION
from engine.errors import IndexMismatchError, NotFoundError


def _video(source="a.mp4", h="h1", tenant="default", nseg=3) -> NewVideo:
    rng = np.random.default_rng(0)
    segs = []
    for i in range(nseg):
        v = rng.normal(size=8).astype(np.float32)
        segs.append(
            NewSegment(
                start=i * 2.0, end=i * 2.0 + 2.0, shot_index=0, transcript=f"words {i}",
                vectors={"visual": v / np.linalg.norm(v)},
                keyframes=[(i * 2.0 + 1.0, [["cat", 0.9]], v / np.linalg.norm(v))],
            )
        )
    return NewVideo(source=source, content_hash=h, tenant=tenant, title="T", tags=["x"], shots=[(0, 2.0 * nseg)],
                    segments=segs)


def test_add_read_back_and_op_log(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    key, seg_ids, seq = c.add_video(_video())
    rec = c.get_video(make_video_id("default", "h1"))
    assert rec.key == key and rec.num_segments == 3 and rec.tags == ["x"]
    segs = c.segments_of(key)
    assert [s.id for s in segs] == seg_ids
    assert segs[1].keyframe_times == (3.0,)
    vecs = c.vectors(seg_ids, "visual")
    assert set(vecs) == set(seg_ids) and vecs[seg_ids[0]].dtype == np.float32
    assert c.vectors(seg_ids, "speech") == {}
    ops = list(c.ops_since(0))
    assert [(o.op, o.video) for o in ops] == [("add", key)] and ops[0].segment_ids.tolist() == seg_ids
    assert seq == c.max_seq() == 1


def test_failed_insert_rolls_back_everything(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    bad = _video()
    bad.segments[2].vectors = {"smell": np.zeros(8, np.float32)}  # invalid modality, last segment
    with pytest.raises(ValueError):
        c.add_video(bad)
    assert c.counts() == {"videos": 0, "shots": 0, "segments": 0, "keyframes": 0, "failures": 0, "seq": 0}


def test_same_content_same_tenant_is_unique_but_other_tenant_is_not(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    c.add_video(_video())
    with pytest.raises(sqlite3.IntegrityError):
        c.add_video(_video(source="copy.mp4"))
    c.add_video(_video(tenant="other"))
    assert c.find_by_hash("h1", tenant="other").tenant == "other"
    assert c.counts()["videos"] == 2


def test_replace_and_delete_cascade(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    key, old_ids, _ = c.add_video(_video())
    key2, new_ids, _ = c.add_video(_video(h="h2"), replace_keys=[key])
    assert key2 != key and not set(old_ids) & set(new_ids)  # ids are never reused
    assert [o.op for o in c.ops_since(0)] == ["add", "delete", "add"]
    c.delete_video(make_video_id("default", "h2"))
    assert c.counts()["segments"] == 0 and c.counts()["keyframes"] == 0
    assert c.vectors(new_ids, "visual") == {}
    with pytest.raises(NotFoundError):
        c.get_video(make_video_id("default", "h2"))


def test_tenant_scoped_lookup(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    c.add_video(_video(tenant="a"))
    vid = make_video_id("a", "h1")
    assert c.get_video(vid, tenant="a").tenant == "a"
    with pytest.raises(NotFoundError):
        c.get_video(vid, tenant="b")
    with pytest.raises(NotFoundError):
        c.delete_video(vid, tenant="b")


def test_failures_recorded_and_cleared_by_success(tmp_path):
    c = Catalog(tmp_path / "c.sqlite")
    c.record_failure("a.mp4", "bad_media", "truncated")
    assert [f.source for f in c.failures()] == ["a.mp4"]
    c.add_video(_video())
    assert c.failures() == []


def test_schema_version_checks(tmp_path):
    p = tmp_path / "c.sqlite"
    Catalog(p).close()
    ro = Catalog(p, read_only=True)
    assert ro.counts()["videos"] == 0
    conn = sqlite3.connect(p)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(IndexMismatchError):
        Catalog(p)


def test_migration_from_empty_is_idempotent(tmp_path):
    p = tmp_path / "c.sqlite"
    Catalog(p).close()
    Catalog(p).close()  # reopening must not re-run migrations
    conn = sqlite3.connect(p)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
