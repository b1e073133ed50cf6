"""Reliability (issue 21): special files never hang an ingest, readers replay the op-log
tail (BM25 included) after a crash, workers die with a killed parent, and file names
cannot split the CLI's lines.

Hang guards (``_HANG_S``) only stop a test that would otherwise never end; no test
asserts how fast anything is.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from api.cli import main
from engine.index import VideoIndex
from indexer.ingest import NotAFileError, discover, file_hash
from tests import synth

ROOT = Path(__file__).resolve().parents[1]
_HANG_S = 600  # a run that has not ended by then hangs (each takes seconds)
FAST = ["--no-speech", "--no-ocr", "--quiet"]


def _cli(*args: str, timeout: float = _HANG_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# -- 1. special files ----------------------------------------------------------------------
def test_discover_reports_special_files_loops_and_folders_named_like_videos(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    good = d / "good.mp4"
    good.write_bytes(b"\0" * 10)
    os.mkfifo(d / "pipe.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.mp4"))
    os.symlink("loop.mp4", d / "loop.mp4")  # a link to itself
    os.symlink("gone.mp4", d / "dangling.mp4")
    os.symlink("b.mp4", tmp_path / "a.mp4")  # a loop of two links, named
    os.symlink("a.mp4", tmp_path / "b.mp4")
    (tmp_path / "x.mp4").mkdir()  # a folder named like a video, holding none
    try:
        sources, failed = discover([str(d), str(tmp_path / "x.mp4"), "/dev/zero", str(tmp_path / "a.mp4"),
                                    str(d / "loop.mp4")])
    finally:
        sock.close()
    assert sources == [str(good)]
    assert len({f.source for f in failed}) == len(failed)  # each once, even when met twice
    by = {(f.source, f.code): f.reason for f in failed}
    assert "named pipe" in by[(str(d / "pipe.mp4"), "not_a_file")]
    assert "socket" in by[(str(d / "sock.mp4"), "not_a_file")]
    assert "character device" in by[("/dev/zero", "not_a_file")]
    assert "directory" in by[(str(tmp_path / "x.mp4"), "not_a_file")]
    for loop in (d / "loop.mp4", tmp_path / "a.mp4"):
        reason = by[(str(loop), "symlink_loop")]
        assert "symbolic link loop" in reason and "does not exist" not in reason
    assert "gone.mp4" in by[(str(d / "dangling.mp4"), "not_found")]
    assert all(str(src) in reason for (src, _), reason in by.items())  # each names its input


def test_file_hash_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    out: dict = {}

    def run() -> None:
        try:
            file_hash(str(fifo))
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(_HANG_S)
    assert not t.is_alive(), "file_hash blocked on a FIFO"
    assert isinstance(out.get("error"), NotAFileError) and "named pipe" in str(out["error"])


def test_file_hash_reads_at_most_the_size_seen_when_opened(tmp_path):
    clip = tmp_path / "a.bin"
    clip.write_bytes(os.urandom(3 << 20))
    assert file_hash(str(clip), chunk=1 << 16) == hashlib.sha256(clip.read_bytes()).hexdigest()
    proc = Path("/proc/self/status")  # a regular file whose stat size (0) is not what a read returns
    if not proc.is_file() or proc.stat().st_size != 0:
        pytest.skip("needs Linux /proc")
    assert proc.read_bytes()
    assert file_hash(str(proc)) == hashlib.sha256(b"").hexdigest()


def test_index_folder_with_a_fifo_indexes_the_good_clip(tmp_path, tools):
    d = tmp_path / "clips"
    d.mkdir()
    clip = synth.make_no_audio_clip(d, name="good.mp4")
    os.mkfifo(d / "pipe.mp4")
    r = _cli("index", str(d), "--index", str(tmp_path / "idx"), *FAST)
    assert r.returncode == 1, r.stdout + r.stderr  # one file failed
    assert f"FAILED {d / 'pipe.mp4'}: [not_a_file]" in r.stdout
    with VideoIndex.open(tmp_path / "idx") as idx:
        assert idx.catalog.find_by_source(str(clip)) is not None
        assert [(f.source, f.code) for f in idx.catalog.failures()] == [(str(d / "pipe.mp4"), "not_a_file")]


def test_index_dev_zero_ends_with_a_clear_failure(tmp_path):
    r = _cli("index", "/dev/zero", "--index", str(tmp_path / "idx"), "--quiet")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED /dev/zero: [not_a_file] /dev/zero is a character device, not a regular file" in r.stdout


# -- 2. readers replay the op-log tail after a crash ------------------------------------------
_CRASH_CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from tests.test_index import open_writer, make_video
    idx = open_writer({path!r})
    idx.add_video(make_video(0))               # committed and saved
    idx.add_video(make_video(1), save=False)   # committed to the catalog only
    os._exit(0)                                # dies before any flush
    """
)


def test_after_a_crash_before_the_flush_readers_find_the_video_by_bm25(tmp_path, capsys):
    from tests.test_index import word

    r = subprocess.run([sys.executable, "-c", _CRASH_CHILD.format(root=str(ROOT), path=str(tmp_path))],
                       capture_output=True, text=True, timeout=_HANG_S)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "lexical" / "lexical.json").read_text())["applied_seq"] == 1
    with VideoIndex.open(tmp_path) as reader:
        v1 = reader.catalog.find_by_source("/media/v1.mp4")
        want = {s.id for s in reader.catalog.segments_of(v1.key)}
        assert {h.id for h in reader.lexical.search(word(1), k=10)} == want
        assert reader.lexical.count() == reader.vectors.count() == reader.catalog.counts()["segments"] == 6
    assert main(["info", "--index", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["derived"]["current"] is False
    assert info["derived"]["saved_seq"] == {"vectors": 1, "lexical": 1} and info["derived"]["catalog_seq"] == 2
    assert info["derived"]["replayed_in_memory"] == {"after_seq": 1, "to_seq": 2}
    assert main(["info", "--index", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "derived state: NOT saved up to the catalog" in text and "ops 2..2 are replayed in memory" in text
    VideoIndex.open(tmp_path, writer=True).close()  # a writer saves the replay
    assert main(["info", "--index", str(tmp_path)]) == 0
    assert "derived state: current" in capsys.readouterr().out


# -- 3. workers die with their parent ---------------------------------------------------------
def test_killed_indexer_leaves_no_worker_processes(tmp_path, tools):
    psutil = pytest.importorskip("psutil")
    d = tmp_path / "clips"
    d.mkdir()
    for i in range(4):
        synth.make_no_audio_clip(d, seconds=3.0 + i, name=f"c{i}.mp4")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "index", str(d), "--index", str(tmp_path / "idx"),
                             "--workers", "2", *FAST], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    children: list = []
    try:
        for _ in range(int(_HANG_S / 0.05)):
            children = parent.children(recursive=True)
            workers = [c for c in children if _is_worker(c, proc.pid)]
            if len(workers) >= 2:
                break
            assert proc.poll() is None, "the indexer ended before its workers were seen"
            time.sleep(0.05)
        else:
            pytest.fail("no worker processes appeared")
        children = parent.children(recursive=True)  # the fork server and workers, the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        alive = _wait_gone(children, psutil)
        assert not alive, f"orphaned after kill -9 of the parent: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in children:
            _kill_quietly(c)


def _is_worker(p, indexer_pid: int) -> bool:
    """A pool worker: a spawned interpreter, or a fork of the fork server (whose
    command line it keeps; the server itself is the indexer's child, a worker is the
    server's)."""
    cmd = " ".join(_cmdline(p))
    if "spawn_main" in cmd:
        return True
    try:
        return "forkserver" in cmd and p.ppid() != indexer_pid
    except Exception:  # noqa: BLE001 - gone
        return False


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except Exception:  # noqa: BLE001 - gone or not ours to read
        return []


def _wait_gone(procs: list, psutil, polls: int = 600, every: float = 0.05) -> list:
    """The processes still running after up to ``polls`` looks (a zombie counts as gone)."""
    alive = procs
    for _ in range(polls):
        alive = [p for p in alive if _running(p, psutil)]
        if not alive:
            return []
        time.sleep(every)
    return [(p.pid, _cmdline(p)[:3]) for p in alive]


def _running(p, psutil) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_quietly(p) -> None:
    try:
        p.kill()
    except Exception:  # noqa: BLE001 - already gone
        pass


# -- 6. a newline in a file name -------------------------------------------------------------
def test_a_newline_in_a_file_name_does_not_split_info_lines(tmp_path, tools, capsys):
    d = tmp_path / "clips"
    d.mkdir()
    clip = synth.make_no_audio_clip(d, name="good.mp4")
    odd = d / "two\nlines.mp4"
    clip.rename(odd)
    bad = d / "bad\nname.mp4"
    bad.write_bytes(b"not a video")
    assert main(["index", str(odd), str(bad), "--index", str(tmp_path / "idx"), *FAST]) == 1
    out = capsys.readouterr().out
    assert "FAILED " + str(d) + "/bad\\nname.mp4: [" in out
    assert main(["info", "--index", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert "two\\nlines.mp4" in out and "bad\\nname.mp4" in out
    assert not any(line.startswith(("lines.mp4", "name.mp4")) for line in out.splitlines())
