"""A table of bad inputs (issue 21): each kind through ``vidseek index`` with its expected
report, all in one batch beside good clips, and the index consistent afterwards.

Each row makes one input and names what ``vidseek index --json`` must report for it:
``indexed`` (in the catalog, not damaged), ``damaged`` (in the catalog with status
``damaged``, listed under ``damaged``), ``duplicate`` (not in the catalog under that
name: its bytes are indexed from another file) or ``failed`` with its code (listed under
``failures`` and on the catalog's failure list). Then the whole index is checked as the
chaos suite checks it: ``PRAGMA integrity_check``, no content hash twice, vectors =
lexical docs = segments for a reader and a writer, every video found by a dense search.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from api.cli import main
from engine.index import VideoIndex
from engine.vectors import SearchParams
from tests import synth
from tests.test_chaos import _same_counts
from tests.test_damage import _source, make_corrupt_middle, make_truncated

MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Row:
    kind: str
    make: Callable[[Path, dict], str]  # (folder, shared state) -> the path given to vidseek index
    expect: str  # indexed | damaged | duplicate | failed
    code: str | None = None  # the failure's code
    says: str | None = None  # a phrase the failure's reason holds


_LENGTHS: dict[str, float] = {}


def _good(d: Path, name: str) -> Path:
    """A good clip whose bytes no other row has (each gets its own length)."""
    seconds = _LENGTHS.setdefault(name, 2.0 + 0.5 * len(_LENGTHS))
    made = synth.make_no_audio_clip(d, seconds=seconds, name="made_" + Path(name).stem + ".mp4")
    return made.rename(d / name)


def _copy(d: Path, name: str, data: bytes) -> str:
    (d / name).write_bytes(data)
    return str(d / name)


def _fifo(d: Path, _) -> str:
    os.mkfifo(d / "pipe.mp4")
    return str(d / "pipe.mp4")


def _socket(d: Path, st: dict) -> str:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.mp4"))
    st["sockets"].append(sock)
    return str(d / "sock.mp4")


def _folder_named_mp4(d: Path, _) -> str:
    (d / "x.mp4").mkdir()
    return str(d / "x.mp4")


def _loop(d: Path, _) -> str:
    os.symlink("loop.mp4", d / "loop.mp4")
    return str(d / "loop.mp4")


def _dangling(d: Path, _) -> str:
    os.symlink("gone.mp4", d / "dangling.mp4")
    return str(d / "dangling.mp4")


def _no_permission(d: Path, _) -> str:
    p = _good(d, "locked.mp4")
    p.chmod(0)
    return str(p)


def _wrong_extension(d: Path, _) -> str:
    p = _good(d, "clip.txt")  # named explicitly: content decides, not the name
    return str(p)


def _non_utf8(d: Path, _) -> str:
    data = _good(d, "plain_for_bytes.mp4").read_bytes()
    (d / "plain_for_bytes.mp4").unlink()
    raw = os.fsencode(d) + b"/caf\xe9.mp4"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(data + b"\0")  # other bytes than any other row
    return os.fsdecode(raw)


def _newline(d: Path, _) -> str:
    p = _good(d, "two_lines.mp4")
    odd = d / "two\nlines.mp4"
    p.rename(odd)
    return str(odd)


def _huge(d: Path, _) -> str:
    p = _good(d, "huge.mp4")
    with open(p, "ab") as f:  # an mp4 with a long tail of junk after its boxes: over --max-bytes
        f.truncate(MAX_BYTES + 1)
    return str(p)


def _duplicate(d: Path, st: dict) -> str:
    return _copy(d, "copy_of_good.mp4", st["good"].read_bytes())


ROWS: tuple[Row, ...] = (
    Row("zero-length", lambda d, st: str(synth.make_zero_byte(d)), "failed", "bad_media", "empty"),
    Row("truncated, index lost", lambda d, st: str(synth.make_corrupt(d, "truncate")), "failed", "bad_media"),
    Row("all media data scrambled", lambda d, st: str(synth.make_corrupt(d, "scramble")), "failed", "bad_media"),
    Row("cut to 30% (index kept)", lambda d, st: str(make_truncated(d, st["source"])), "damaged"),
    Row("corrupt middle", lambda d, st: str(make_corrupt_middle(d, st["source"])), "damaged"),
    Row("not a video", lambda d, st: str(synth.make_not_video(d)), "failed", "bad_media"),
    Row("still image", lambda d, st: str(synth.make_still_image(d)), "failed", "bad_media", "still image"),
    Row("audio only", lambda d, st: str(synth.make_audio_only(d)), "failed", "bad_media", "audio only"),
    Row("1x1 pixel", lambda d, st: str(synth.make_1x1_clip(d)), "failed", "bad_media", "degenerate"),
    Row("zero duration", lambda d, st: str(synth.make_zero_duration(d)), "failed", "bad_media"),
    Row("FIFO", _fifo, "failed", "not_a_file", "named pipe"),
    Row("socket", _socket, "failed", "not_a_file", "socket"),
    Row("/dev/zero", lambda d, st: "/dev/zero", "failed", "not_a_file", "character device"),
    Row("directory named x.mp4", _folder_named_mp4, "failed", "not_a_file", "directory"),
    Row("symlink loop", _loop, "failed", "symlink_loop", "symbolic link loop"),
    Row("dangling symlink", _dangling, "failed", "not_found", "gone.mp4"),
    Row("missing path", lambda d, st: str(d / "never_was.mp4"), "failed", "not_found", "does not exist"),
    Row("over --max-bytes", _huge, "failed", "bad_media", "over the limit"),
    Row("no read permission", _no_permission, "failed", "unreadable", "ermission"),
    Row("wrong extension", _wrong_extension, "indexed"),
    Row("non-UTF-8 file name", _non_utf8, "failed", "bad_name", "not valid UTF-8"),
    Row("newline in the name", _newline, "indexed"),
    Row("same bytes as another file", _duplicate, "duplicate"),
    Row("no duration in the header (raw h264)", lambda d, st: str(synth.make_no_duration(d, "h264")), "indexed"),
)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tools):
    """All rows in one ``vidseek index`` run beside a good clip; (rows with their paths,
    the summary, the exit status, the index)."""
    base = tmp_path_factory.mktemp("bad_inputs")
    d = base / "inputs"
    d.mkdir()
    st: dict = {"sockets": [], "source": _source(d), "good": _good(d, "good.mp4")}
    args = {}
    try:
        for row in ROWS:
            args[row.kind] = row.make(d, st)
        idx = base / "idx"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["index", str(st["good"]), *args.values(), "--index", str(idx), "--no-speech", "--no-ocr",
                       "--quiet", "--json", "--max-bytes", str(MAX_BYTES)])
    finally:
        for s in st["sockets"]:
            s.close()
    return args, json.loads(out.getvalue()), rc, idx, st["good"]


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def test_the_table_has_at_least_20_kinds():
    assert len({r.kind for r in ROWS}) >= 20


@pytest.mark.parametrize("row", ROWS, ids=[r.kind for r in ROWS])
def test_each_bad_input_gets_its_report(batch, row):
    args, summary, rc, idx, _ = batch
    path = args[row.kind]
    shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    failures = {f["source"]: f for f in summary["failures"]}
    damaged = {d["source"]: d for d in summary["damaged"]}
    expect, code = row.expect, row.code
    if row.kind == "no read permission" and _root():
        expect, code = "indexed", None  # root reads any file
    with VideoIndex.open(idx) as index:
        rec = index.catalog.find_by_source(path) if shown == path else None
        listed = {f.source: f.code for f in index.catalog.failures()}
    if expect == "failed":
        assert shown in failures, (row.kind, summary["failures"])
        assert failures[shown]["code"] == code, failures[shown]
        if row.says:
            assert row.says in failures[shown]["reason"], failures[shown]
        assert listed.get(shown) == code and rec is None
    elif expect == "damaged":
        assert shown in damaged and rec is not None and rec.status == "damaged", summary
        assert rec.duration == pytest.approx(damaged[shown]["decodable_end"])
    elif expect == "indexed":
        assert rec is not None and rec.status == "indexed" and shown not in failures, summary
    else:  # duplicate
        assert rec is None and shown not in failures and summary["by_status"].get("duplicate") == 1


def test_the_batch_exits_1_and_the_good_clip_is_indexed(batch):
    args, summary, rc, idx, good = batch
    assert rc == 1
    with VideoIndex.open(idx) as index:
        assert index.catalog.find_by_source(str(good)).status == "indexed"
    want_failed = sum(r.expect == "failed" and not (r.kind == "no read permission" and _root()) for r in ROWS)
    assert summary["by_status"].get("failed") == want_failed


def test_the_index_is_consistent_after_the_bad_batch(batch):
    idx = batch[3]
    con = sqlite3.connect(f"file:{idx / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT content_hash FROM videos GROUP BY content_hash HAVING COUNT(*) > 1").fetchall() == []
    finally:
        con.close()
    for writer in (False, True):
        with VideoIndex.open(idx, writer=writer) as index:
            _same_counts(index, "writer" if writer else "reader")
            assert index.info()["derived"]["current"]
            for v in index.catalog.list_videos(limit=1000):
                segs = index.catalog.segments_of(v.key)
                per_mod = index.catalog.vectors_many([segs[0].id], list(index.blocks))
                q = index.joint_vector({m: per_mod[m][segs[0].id] for m in index.blocks if segs[0].id in per_mod[m]})
                _, found = index.search_vectors(q[None], SearchParams(k=10))
                assert {s.id for s in segs} & set(np.asarray(found[0]).tolist()), v.source
