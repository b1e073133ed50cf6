"""Chaos: random ``kill -9`` of ``vidseek index`` (1 and 2 workers) while it ingests real
clips, each kill followed by the consistency checks, and a resume that completes.

After every kill:

- no orphan: every process the indexer started (workers, their helpers) is gone;
- the catalog passes ``PRAGMA integrity_check``; no content hash is indexed twice;
- nothing committed is lost (every video an earlier check saw is still there);
- a *reader* (it never writes: it replays the op-log tail in memory) has vectors ==
  lexical docs == catalog segments, and finds every committed video by a dense search
  (its own segment's joint vector) and by a BM25 search (a token only its sidecar title
  holds); then a *writer* open saves the replay and has the same counts.

A first complete run measures how long a whole ingest takes; each kill then comes
at a random moment of that span (start-up, model loading, analysis, commits, flushes).
The next run resumes; a round ends with a run that completes (exit 0, every clip
indexed once), then starts again in a new index. ``VIDSEEK_CHAOS_KILLS`` (default 10)
sets the number of kills, ``VIDSEEK_CHAOS_SEED`` the random seed; the figures (kills,
lost, corrupt, orphans, resume failures, kills after the run had committed videos,
kills that left unsaved derived state) are printed and written to
``VIDSEEK_CHAOS_REPORT`` when set. Slow: real models, a fresh process per run.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest

from engine.index import VideoIndex
from engine.vectors import SearchParams

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# Short real clips of several containers and codecs (../shared/media/MANIFEST.tsv).
CLIPS = ("c047.mp4", "c040.mp4", "c005.mpg", "c030.mp4", "c025.mp4", "c022.mp4", "c058.avi", "c016.ogg")
_HANG_S = 600  # a run that has not ended by then hangs
_POLLS = 600  # looks for gone processes, 0.05 s apart


@dataclass
class Figures:
    kills: int = 0
    kills_1_worker: int = 0
    kills_2_workers: int = 0
    kills_after_commits: int = 0  # the killed run had committed videos (it died mid-batch)
    kills_with_unsaved_state: int = 0  # the reader had to replay ops a writer had not saved
    lost: int = 0
    corrupt: int = 0
    orphaned_processes: int = 0
    resumes: int = 0
    resume_failures: int = 0
    rounds: int = 0
    problems: list[str] = field(default_factory=list)


def _token(name: str) -> str:
    """A word only this clip's sidecar title holds (letters only: one BM25 token)."""
    return "chaos" + "".join(chr(ord("a") + int(d)) for d in name[1:4]) + "clip"


@pytest.fixture(scope="module")
def chaos_clips(shared_media, tools, tmp_path_factory) -> tuple[list[str], Path]:
    clips = [shared_media / c for c in CLIPS]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        pytest.skip(f"clips missing from {shared_media}: {missing}")
    side = tmp_path_factory.mktemp("chaos") / "meta.jsonl"
    side.write_text("".join(json.dumps({"source": str(c), "title": f"{_token(c.name)} {c.stem}"}) + "\n"
                            for c in clips))
    return [str(c) for c in clips], side


def _run_cmd(clips: list[str], side: Path, idx: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "api.cli", "index", *clips, "--index", str(idx), "--metadata", str(side),
            "--workers", str(workers), "--no-speech", "--no-ocr", "--quiet", "--json"]


def test_kill_dash_nine_during_ingest_loses_nothing(chaos_clips, tmp_path):
    psutil = pytest.importorskip("psutil")
    clips, side = chaos_clips
    want_kills = int(os.environ.get("VIDSEEK_CHAOS_KILLS", "10"))
    rng = random.Random(int(os.environ.get("VIDSEEK_CHAOS_SEED", "21")))
    fig = Figures()
    # A first, complete run (unkilled) measures how long a whole ingest takes: kills are
    # then spread over that span, start-up and model loading included.
    idx, seen = _new_round(tmp_path, fig)
    started = time.monotonic()
    first = subprocess.run(_run_cmd(clips, side, idx, 2), cwd=ROOT, capture_output=True, text=True, timeout=_HANG_S)
    longest_run = time.monotonic() - started
    fig.resumes += 1
    seen = _check(idx, seen, fig, "first run")
    assert first.returncode == 0 and len(seen) == len(clips), (first.stdout[-2000:], first.stderr[-2000:])
    idx, seen = _new_round(tmp_path, fig)
    while fig.kills < want_kills:
        workers = rng.choice((1, 2))
        proc = subprocess.Popen(_run_cmd(clips, side, idx, workers), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        delay = rng.uniform(0.5, longest_run)
        descendants = _watch(proc, psutil, delay)
        if proc.poll() is None:  # still running: kill it, then check what it left
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            fig.kills += 1
            setattr(fig, "kills_1_worker" if workers == 1 else "kills_2_workers",
                    getattr(fig, "kills_1_worker" if workers == 1 else "kills_2_workers") + 1)
            fig.orphaned_processes += _orphans(descendants, psutil, fig)
            before = len(seen)
            seen = _check(idx, seen, fig, f"kill {fig.kills} ({workers} workers, after {delay:.1f} s)")
            fig.kills_after_commits += len(seen) > before
            continue
        out, err = proc.communicate()
        longest_run = max(longest_run, time.monotonic() - started)
        fig.resumes += 1
        seen = _check(idx, seen, fig, f"resume in round {fig.rounds}")
        if proc.returncode != 0 or len(seen) != len(clips):
            fig.resume_failures += 1
            fig.problems.append(f"round {fig.rounds}: the resume ended {proc.returncode} with"
                                f" {len(seen)}/{len(clips)} videos: {out[-2000:]} {err[-2000:]}")
        idx, seen = _new_round(tmp_path, fig)
    # the last round's resume completes too
    out = subprocess.run(_run_cmd(clips, side, idx, 2), cwd=ROOT, capture_output=True, text=True, timeout=_HANG_S)
    fig.resumes += 1
    seen = _check(idx, seen, fig, "final resume")
    if out.returncode != 0 or len(seen) != len(clips):
        fig.resume_failures += 1
        fig.problems.append(f"final resume ended {out.returncode} with {len(seen)}/{len(clips)} videos:"
                            f" {out.stdout[-2000:]} {out.stderr[-2000:]}")
    report = asdict(fig)
    print("\nchaos figures:", json.dumps({k: v for k, v in report.items() if k != "problems"}))
    if os.environ.get("VIDSEEK_CHAOS_REPORT"):
        Path(os.environ["VIDSEEK_CHAOS_REPORT"]).write_text(json.dumps(report, indent=2))
    assert (fig.lost, fig.corrupt, fig.orphaned_processes, fig.resume_failures) == (0, 0, 0, 0), fig.problems


def _new_round(tmp_path: Path, fig: Figures) -> tuple[Path, dict[str, str]]:
    fig.rounds += 1
    return tmp_path / f"round{fig.rounds:03d}", {}


def _watch(proc: subprocess.Popen, psutil, delay: float) -> list:
    """Wait ``delay`` seconds (or until the run ends), noting every process it starts."""
    procs: dict[int, object] = {}
    parent = psutil.Process(proc.pid)
    end = time.monotonic() + delay
    while time.monotonic() < end and proc.poll() is None:
        try:
            for c in parent.children(recursive=True):
                procs.setdefault(c.pid, c)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return list(procs.values())


def _orphans(procs: list, psutil, fig: Figures) -> int:
    alive = procs
    for _ in range(_POLLS):
        alive = [p for p in alive if _running(p, psutil)]
        if not alive:
            return 0
        time.sleep(0.05)
    for p in alive:
        fig.problems.append(f"orphan after kill {fig.kills}: pid {p.pid}")
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return len(alive)


def _running(p, psutil) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _check(idx: Path, seen: dict[str, str], fig: Figures, when: str) -> dict[str, str]:
    """The consistency checks; returns the committed videos (content hash -> source)."""
    if not (idx / "manifest.json").exists():  # killed before the index was created
        if seen:
            fig.lost += len(seen)
            fig.problems.append(f"{when}: the index vanished")
        return {}
    try:
        now = _check_reader(idx, fig, when)
        _check_writer(idx, now, fig, when)
    except Exception as e:  # noqa: BLE001 - any failure to open or read is corruption
        fig.corrupt += 1
        fig.problems.append(f"{when}: {type(e).__name__}: {e}")
        return seen
    lost = set(seen) - set(now)
    if lost:
        fig.lost += len(lost)
        fig.problems.append(f"{when}: lost {[seen[h] for h in lost]}")
    return now


def _check_reader(idx: Path, fig: Figures, when: str) -> dict[str, str]:
    con = sqlite3.connect(f"file:{idx / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        dups = con.execute("SELECT content_hash, COUNT(*) FROM videos GROUP BY content_hash HAVING COUNT(*) > 1"
                           ).fetchall()
    finally:
        con.close()
    if integrity != "ok" or dups:
        raise AssertionError(f"integrity {integrity!r}, duplicate hashes {dups}")
    with VideoIndex.open(idx) as r:
        if not r.info()["derived"]["current"]:
            fig.kills_with_unsaved_state += 1
        _same_counts(r, "reader")
        videos = r.catalog.list_videos(limit=10_000)
        for v in videos:
            segs = r.catalog.segments_of(v.key)
            ids = {s.id for s in segs}
            per_mod = r.catalog.vectors_many([segs[0].id], list(r.blocks))
            q = r.joint_vector({m: per_mod[m][segs[0].id] for m in r.blocks if segs[0].id in per_mod[m]})
            _, found = r.search_vectors(q[None], SearchParams(k=10))
            if not ids & set(np.asarray(found[0]).tolist()):
                raise AssertionError(f"{v.source}: not found by a dense search of its own segment")
            hits = {h.id for h in r.lexical_search(_token(Path(v.source).name), k=100)}
            if not hits or not hits <= ids:
                raise AssertionError(f"{v.source}: BM25 of its title token found {sorted(hits)}, not {sorted(ids)}")
        return {v.content_hash: v.source for v in videos}


def _check_writer(idx: Path, videos: dict[str, str], fig: Figures, when: str) -> None:
    with VideoIndex.open(idx, writer=True) as w:  # saves what the reader replayed in memory
        _same_counts(w, "writer")
        if not w.info()["derived"]["current"]:
            raise AssertionError("a writer's open did not save the derived state")
        if {v.content_hash for v in w.catalog.list_videos(limit=10_000)} != set(videos):
            raise AssertionError("the writer sees other videos than the reader")


def _same_counts(index: VideoIndex, who: str) -> None:
    segments = index.catalog.counts()["segments"]
    vectors, docs = index.vectors.count(), index.lexical.count()
    if not vectors == docs == segments:
        raise AssertionError(f"{who}: vectors {vectors}, lexical docs {docs}, segments {segments}")
