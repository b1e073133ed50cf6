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
indexed once), then starts again in a new index. ``VIDSEEK_CHAOS_KILLS`` (default 40: with the server suite's 10, 50 kills in every CI run)
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
    want_kills = int(os.environ.get("VIDSEEK_CHAOS_KILLS", "40"))
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


def _title_token(v) -> str:
    """The BM25 token of a video's title (the HTTP chaos sends it as the job's title)."""
    return (v.title or "").split()[0]


def _check(idx: Path, seen: dict[str, str], fig: Figures, when: str, token_of=None) -> dict[str, str]:
    """The consistency checks; returns the committed videos (content hash -> source).
    ``token_of(video)``: the word only its title holds (default: from its file name)."""
    if not (idx / "manifest.json").exists():  # killed before the index was created
        if seen:
            fig.lost += len(seen)
            fig.problems.append(f"{when}: the index vanished")
        return {}
    try:
        now = _check_reader(idx, fig, when, token_of)
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


def _check_reader(idx: Path, fig: Figures, when: str, token_of=None) -> dict[str, str]:
    token_of = token_of or (lambda v: _token(Path(v.source).name))
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
            hits = {h.id for h in r.lexical_search(token_of(v), k=100)}
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


# -- kill -9 of `vidseek serve` during HTTP ingest ----------------------------------------------
@dataclass
class ServeFigures(Figures):
    uploads: int = 0
    path_ingests: int = 0
    restarts: int = 0
    requeued_jobs: int = 0  # jobs a killed server left queued or running, done after a restart
    http_5xx: int = 0
    http_requests: int = 0


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.content = status, body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class _Http:
    """A minimal HTTP client over the standard library (loopback only): JSON bodies and
    multipart uploads. Raises one of ``TRANSPORT`` when the server is gone."""

    import http.client as _hc

    TRANSPORT = (OSError, _hc.HTTPException)

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, url: str, *, json=None, files=None, data=None) -> _Resp:  # noqa: A002
        import http.client
        import json as _json
        import secrets

        headers: dict[str, str] = {}
        body: bytes | None = None
        if json is not None:
            body, headers["Content-Type"] = _json.dumps(json).encode(), "application/json"
        elif files:
            boundary = "chaos" + secrets.token_hex(8)
            parts = []
            for k, v in (data or {}).items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
            for k, (name, f) in files.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                             f"Content-Type: application/octet-stream\r\n\r\n".encode() + f.read() + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, url, body=body, headers=headers)
            r = conn.getresponse()
            return _Resp(r.status, r.read())
        finally:
            conn.close()

    def get(self, url: str) -> _Resp:
        return self.request("GET", url)

    def close(self) -> None:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_dash_nine_of_the_server_during_http_ingest(chaos_clips, tmp_path):
    """``vidseek serve`` (loopback only) is killed with SIGKILL while it ingests real clips
    (half uploaded, half by path inside its allowed root); each kill is followed by the
    consistency checks, then a restart that requeues the unfinished jobs. A round ends
    when every job is done (each clip indexed once); the next round starts a new index.
    ``VIDSEEK_CHAOS_SERVE_KILLS`` (default 10) sets the number of kills; every response
    of a /v1 route is counted, and a 5xx is a failure."""
    psutil = pytest.importorskip("psutil")
    clips, _ = chaos_clips
    allowed = str(Path(clips[0]).parent)
    want_kills = int(os.environ.get("VIDSEEK_CHAOS_SERVE_KILLS", "10"))
    rng = random.Random(int(os.environ.get("VIDSEEK_CHAOS_SEED", "21")))
    fig = ServeFigures()
    titles = {c: f"{_token(Path(c).name)} {Path(c).stem}" for c in clips}

    class Round:
        def __init__(self) -> None:
            fig.rounds += 1
            self.idx = tmp_path / f"serve{fig.rounds:03d}"
            self.jobs: dict[str, str] = {}  # job id -> clip
            self.seen: dict[str, str] = {}

    def start(r: Round):
        port = _free_port()
        log = open(tmp_path / f"serve{fig.rounds:03d}.log", "a")
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--index", str(r.idx), "--host",
                                 "127.0.0.1", "--port", str(port), "--allow-root", allowed, "--rate", "10000"],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return proc, _Http(port)

    def call(client, method: str, url: str, **kw):
        resp = client.request(method, url, **kw)
        fig.http_requests += 1
        if resp.status_code >= 500:
            fig.http_5xx += 1
            fig.problems.append(f"{method} {url}: {resp.status_code} {resp.text[:500]}")
        return resp

    def ready(proc, client, deadline: float | None) -> bool:
        """Wait for /readyz (False: the server died first, or the deadline passed: a kill
        during start-up, model loading or the requeued jobs' first steps)."""
        for _ in range(int(_HANG_S / 0.1)):
            if proc.poll() is not None or (deadline is not None and time.monotonic() >= deadline):
                return False
            try:
                if client.get("/readyz").status_code == 200:
                    return True
            except _Http.TRANSPORT:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not get ready")

    def submit(r: Round, client, deadline: float | None) -> None:
        for i, clip in enumerate(clips):
            if clip in r.jobs.values():
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return  # killed between two submissions; the rest are sent after the restart
            if i % 2:  # by path, inside the allowed root
                resp = call(client, "POST", "/v1/ingest", json={"path": clip, "title": titles[clip],
                                                                "speech": False, "ocr": False})
                fig.path_ingests += 1
            else:  # uploaded
                with open(clip, "rb") as f:
                    resp = call(client, "POST", "/v1/ingest", files={"file": (Path(clip).name, f)},
                                data={"title": titles[clip], "speech": "false", "ocr": "false"})
                fig.uploads += 1
            assert resp.status_code == 202, resp.text
            r.jobs[resp.json()["job_id"]] = clip

    def all_done(r: Round, client) -> bool:
        states = [call(client, "GET", f"/v1/jobs/{j}").json() for j in r.jobs]
        failed = [s for s in states if s["status"] == "failed"]
        if failed:
            raise AssertionError(f"jobs failed: {failed}")
        return len(r.jobs) == len(clips) and all(s["status"] == "done" for s in states)

    def run_until(r: Round, proc, client, deadline: float | None) -> bool:
        """Submit what is missing and poll the jobs until all are done (True) or the
        deadline passes (False: the caller kills the server)."""
        if not ready(proc, client, deadline):
            return False
        try:
            submit(r, client, deadline)
            while deadline is None or time.monotonic() < deadline:
                if all_done(r, client):
                    return True
                time.sleep(0.1)
        except _Http.TRANSPORT:  # only when it died on its own
            if proc.poll() is None:
                raise
        return False

    def finish_round(r: Round, proc, client) -> None:
        fig.resumes += 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(_HANG_S)
        client.close()
        r.seen = _check(r.idx, r.seen, fig, f"round {fig.rounds} complete", _title_token)
        if len(r.seen) != len(clips):
            fig.resume_failures += 1
            fig.problems.append(f"round {fig.rounds}: {len(r.seen)}/{len(clips)} videos after every job was done")

    # A first round, unkilled, measures how long start-up plus the whole ingest takes.
    r = Round()
    t0 = time.monotonic()
    proc, client = start(r)
    assert run_until(r, proc, client, None), "the first, unkilled round did not complete"
    longest = time.monotonic() - t0
    finish_round(r, proc, client)
    r = Round()
    pending = 0  # jobs the last kill left unfinished
    while fig.kills < want_kills:
        proc, client = start(r)
        started = time.monotonic()
        if fig.kills:
            fig.restarts += 1
        delay = rng.uniform(0.5, longest)
        done = run_until(r, proc, client, started + delay)
        if done:
            fig.requeued_jobs += pending
            pending = 0
            finish_round(r, proc, client)
            r = Round()
            continue
        children = []
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        client.close()
        fig.kills += 1
        fig.orphaned_processes += _orphans(children, psutil, fig)
        before = len(r.seen)
        r.seen = _check(r.idx, r.seen, fig, f"serve kill {fig.kills} (after {delay:.1f} s)", _title_token)
        fig.kills_after_commits += len(r.seen) > before
        pending = sum(1 for j in r.jobs) - len(r.seen)
    # the last round completes after a restart
    proc, client = start(r)
    fig.restarts += 1
    if run_until(r, proc, client, None):
        fig.requeued_jobs += pending
        finish_round(r, proc, client)
    else:
        proc.kill()
        fig.resume_failures += 1
        fig.problems.append("the final restart did not complete its jobs")
    report = asdict(fig)
    print("\nserve chaos figures:", json.dumps({k: v for k, v in report.items() if k != "problems"}))
    if os.environ.get("VIDSEEK_CHAOS_REPORT"):
        Path(os.environ["VIDSEEK_CHAOS_REPORT"] + ".serve.json").write_text(json.dumps(report, indent=2))
    assert (fig.lost, fig.corrupt, fig.orphaned_processes, fig.resume_failures, fig.http_5xx) == (0, 0, 0, 0, 0), \
        fig.problems
