"""Load run of the HTTP service on loopback: concurrent searches while an ingest job runs.

    python -m benchmarks.bench_api_load --concurrency 8 --max-requests 4000 --time-limit 120 \
        --out bench-results/api-load.json

Builds a real index (real models, speech and OCR on) of a few synthetic clips
(``tests/synth.py``: two spoken sentences, two burned-in texts, a test pattern), starts
``vidseek serve`` on it in a child process bound to 127.0.0.1 (local mode, no keys;
the per-key rate limit raised out of the way), and then:

1. warm-up: a few searches, not measured;
2. baseline: ``--baseline-s`` seconds of concurrent searches with no ingest;
3. ingest: ``POST /v1/ingest`` of another synthetic speech clip (a server-side path),
   while the same searches go on; the job is polled until it is done;
4. tail: ``--tail-s`` seconds more after the job finished.

It stops by itself at ``--max-requests`` searches or ``--time-limit`` seconds,
whichever comes first. Each search is ``GET /v1/search`` from ``--concurrency``
workers (httpx, one connection each) with a fixed rotation of queries. Reported:
throughput (requests/s) and p50/p90/p99 latency, overall and per phase; the error
count (any non-200 or transport error; must be zero); how long the ingest took; and
whether the ingested video was found by a search for its own sentence, on the same
server process, right after the job finished (no restart).

The server and this client share the machine's cores, so the numbers are a floor
for a dedicated server.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

from benchmarks.core import add_out, entry_parser, free_port, percentile, write_json

__all__ = ["Sample", "PhaseStats", "LoadResult", "build_index", "start_server", "run_load", "main"]

QUERIES: tuple[str, ...] = (
    "red boat leaving the harbour in the evening",
    "harbour 42",
    '"grand opening sale"',
    "a shop sign announcing a sale",
    "colourful test pattern",
    "boat harbour seven o'clock",
    "someone talking about a boat",
    "sale sign has:text",
)
BASE_SPEECH = "The red boat leaves the harbour at seven in the evening."
# Several sentences (about 20 s of speech), so the ingest overlaps a good share of the load.
NEW_SPEECH = ("Welcome to the cooking show, today we bake a chocolate cake with fresh strawberries. "
              "First we melt the butter and the dark chocolate in a small pan over a low heat. "
              "Then we whisk four eggs with the sugar until the mixture is pale and thick. "
              "Fold in the flour, pour the batter into the tin and bake it for forty minutes.")
NEW_QUERY = "cooking show chocolate cake with strawberries"


@dataclass(frozen=True)
class Sample:
    """One search request: when it started (seconds since the load began), how long it
    took, its HTTP status (0: transport error) and the phase it started in."""

    t: float
    seconds: float
    status: int
    phase: str


@dataclass(frozen=True)
class PhaseStats:
    """Throughput and latency of the requests that started in one phase."""

    phase: str
    requests: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class LoadResult:
    """Everything one load run reports (written as JSON)."""

    concurrency: int
    requests: int
    errors: int
    error_statuses: dict[str, int]
    seconds: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    phases: list[PhaseStats]
    ingest_job: dict[str, Any]
    ingest_seconds: float | None
    ingested_searchable_without_restart: bool
    stopped_by: str
    index_videos_before: int
    config: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)


def build_index(work: Path) -> tuple[Path, Path, Path]:
    """Synthetic clips, an index of all but one (built by ``vidseek index``), and the
    clip left out for the ingest during the load. Returns (index, allowed root, clip)."""
    from tests import synth

    missing = synth.require_tools()
    if missing:
        raise SystemExit(f"bench_api_load: {missing}")
    clips = work / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    base = [
        synth.make_speech_clip(clips, BASE_SPEECH, name="boat.mp4"),
        synth.make_text_clip(clips, "HARBOUR 42", name="harbour_sign.mp4"),
        synth.make_text_clip(clips, "GRAND OPENING SALE", name="sale_sign.mp4", size=(640, 160), fontsize=48),
        synth.make_no_audio_clip(clips, seconds=3.0, name="pattern.mp4"),
    ]
    new_clip = synth.make_speech_clip(clips, NEW_SPEECH, name="cooking.mp4")
    index = work / "index"
    cmd = [sys.executable, "-m", "api.cli", "index", *map(str, base), "--index", str(index), "--quiet", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_api_load: indexing failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return index, clips, new_clip


def start_server(index: Path, root: Path, port: int, log: IO[bytes], *, extra: Sequence[str] = (),
                 new_session: bool = False) -> subprocess.Popen:
    """``vidseek serve`` in a child process; its log (one JSON line per request) goes to
    ``log``. The rate limit is set far above what the run sends: this measures the
    service, not the limiter (``--rate 0`` would fall back to the default). ``extra``:
    more ``serve`` options; ``new_session``: its own process group, so that the caller
    can stop it with every child it starts (a local Ray instance)."""
    cmd = [sys.executable, "-m", "api.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
           "--port", str(port), "--allow-root", str(root), "--rate", "1000000", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=new_session)


async def _wait_ready(client, proc: subprocess.Popen, limit_s: float) -> None:
    import httpx2 as httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.poll() is not None:
            raise SystemExit(f"bench_api_load: the server exited with {proc.returncode}; see its log")
        try:
            r = await client.get("/readyz")
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"bench_api_load: the server was not ready after {limit_s:.0f} s")


async def run_load(base_url: str, new_clip: Path, *, concurrency: int, max_requests: int, time_limit: float,
                   baseline_s: float, tail_s: float, warmup: int) -> dict[str, Any]:
    """The load itself; returns the raw samples and the ingest's outcome."""
    import httpx2 as httpx

    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as client:
        for i in range(warmup):
            r = await client.get("/v1/search", params={"q": QUERIES[i % len(QUERIES)], "k": 10})
            r.raise_for_status()
        videos_before = len((await client.get("/v1/videos")).json()["videos"])

        samples: list[Sample] = []
        phase = "baseline"
        stop = asyncio.Event()
        stopped_by = "ingest_done"
        t0 = time.perf_counter()
        issued = 0

        async def worker(w: int) -> None:
            nonlocal issued, stopped_by
            i = w
            while not stop.is_set():
                if issued >= max_requests:
                    stopped_by = "max_requests"
                    stop.set()
                    break
                issued += 1
                q = QUERIES[i % len(QUERIES)]
                i += concurrency
                started = time.perf_counter()
                ph = phase
                try:
                    r = await client.get("/v1/search", params={"q": q, "k": 10})
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                samples.append(Sample(started - t0, time.perf_counter() - started, status, ph))

        async def driver() -> dict[str, Any]:
            nonlocal phase, stopped_by
            await asyncio.sleep(baseline_s)
            phase = "ingest"
            t_sub = time.perf_counter()
            r = await client.post("/v1/ingest", json={"path": str(new_clip), "title": "cooking show"})
            if r.status_code != 202:
                stop.set()
                return {"submit_status": r.status_code, "body": r.text}
            job_id = r.json()["job_id"]
            job: dict[str, Any] = {}
            # Polled to the end even when the searches stop early (max requests), but
            # never past the time limit.
            while time.perf_counter() - t0 < time_limit:
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                if job["status"] in ("done", "failed", "abandoned"):
                    break
                await asyncio.sleep(0.2)
            t_done = time.perf_counter()
            # Right after the job: is the new video found, by this same server process?
            found = False
            if job.get("status") == "done":
                s = await client.get("/v1/search", params={"q": NEW_QUERY, "k": 10})
                found = s.status_code == 200 and job.get("video_id") in {h["video_id"] for h in s.json()["hits"]}
            phase = "after_ingest"
            if not stop.is_set():
                await asyncio.sleep(tail_s)
                stopped_by = "ingest_done"
                stop.set()
            return {"job": job, "ingest_seconds": (t_done - t_sub) if job.get("status") == "done" else None,
                    "searchable": found}

        async def limiter() -> None:
            nonlocal stopped_by
            try:
                await asyncio.wait_for(stop.wait(), timeout=time_limit)
            except asyncio.TimeoutError:
                stopped_by = "time_limit"
                stop.set()

        workers = [asyncio.create_task(worker(w)) for w in range(concurrency)]
        lim = asyncio.create_task(limiter())
        outcome = await driver()
        stop.set()
        await asyncio.gather(*workers, lim)
        elapsed = time.perf_counter() - t0
    return {"samples": samples, "elapsed": elapsed, "outcome": outcome, "stopped_by": stopped_by,
            "videos_before": videos_before}


def _phase_stats(name: str, samples: list[Sample]) -> PhaseStats:
    ok = [s.seconds * 1000 for s in samples if s.status == 200]
    span = (max(s.t + s.seconds for s in samples) - min(s.t for s in samples)) if samples else 0.0
    return PhaseStats(
        phase=name, requests=len(samples), errors=sum(s.status != 200 for s in samples), seconds=round(span, 3),
        throughput_rps=round(len(samples) / span, 2) if span > 0 else float("nan"),
        p50_ms=round(percentile(ok, 50), 2), p90_ms=round(percentile(ok, 90), 2), p99_ms=round(percentile(ok, 99), 2),
        max_ms=round(max(ok), 2) if ok else float("nan"),
    )


def summarise(raw: dict[str, Any], config: dict[str, Any]) -> LoadResult:
    from benchmarks.machine import machine_info

    samples: list[Sample] = raw["samples"]
    ok = [s.seconds * 1000 for s in samples if s.status == 200]
    statuses: dict[str, int] = {}
    for s in samples:
        if s.status != 200:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    out = raw["outcome"]
    return LoadResult(
        concurrency=config["concurrency"], requests=len(samples), errors=sum(statuses.values()),
        error_statuses=statuses, seconds=round(raw["elapsed"], 3),
        throughput_rps=round(len(samples) / raw["elapsed"], 2) if raw["elapsed"] > 0 else float("nan"),
        p50_ms=round(percentile(ok, 50), 2), p90_ms=round(percentile(ok, 90), 2), p99_ms=round(percentile(ok, 99), 2),
        phases=[_phase_stats(p, [s for s in samples if s.phase == p])
                for p in ("baseline", "ingest", "after_ingest") if any(s.phase == p for s in samples)],
        ingest_job={k: v for k, v in (out.get("job") or out).items() if k != "tenant"},
        ingest_seconds=round(out["ingest_seconds"], 2) if out.get("ingest_seconds") else None,
        ingested_searchable_without_restart=bool(out.get("searchable")), stopped_by=raw["stopped_by"],
        index_videos_before=raw["videos_before"], config=config, machine=machine_info(),
    )


def _table(res: LoadResult) -> str:
    rows = [("phase", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms")]
    for p in res.phases:
        rows.append((p.phase, str(p.requests), str(p.errors), f"{p.throughput_rps:.1f}", f"{p.p50_ms:.1f}",
                     f"{p.p90_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.max_ms:.1f}"))
    rows.append(("all", str(res.requests), str(res.errors), f"{res.throughput_rps:.1f}", f"{res.p50_ms:.1f}",
                 f"{res.p90_ms:.1f}", f"{res.p99_ms:.1f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += [
        "",
        f"concurrency {res.concurrency}; stopped by {res.stopped_by}; {res.seconds:.1f} s in all",
        f"ingest job: {res.ingest_job.get('status')} / {res.ingest_job.get('result')} in "
        f"{res.ingest_seconds if res.ingest_seconds is not None else '-'} s; searchable without restart: "
        f"{'yes' if res.ingested_searchable_without_restart else 'NO'}",
        f"errors: {res.errors} {res.error_statuses or ''}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_api_load", __doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent search workers (default 8)")
    ap.add_argument("--max-requests", type=int, default=4000, help="stop after this many searches")
    ap.add_argument("--time-limit", type=float, default=120.0, help="stop after this many seconds of load")
    ap.add_argument("--baseline-s", type=float, default=10.0, help="seconds of search load before the ingest")
    ap.add_argument("--tail-s", type=float, default=5.0, help="seconds of search load after the ingest")
    ap.add_argument("--warmup", type=int, default=16, help="unmeasured searches first")
    ap.add_argument("--work-dir", help="where clips and the index go (default: a temporary folder)")
    add_out(ap, "bench-results/api-load.json")
    args = ap.parse_args(argv)
    if args.concurrency < 1 or args.max_requests < 1 or args.time_limit <= 0:
        ap.error("--concurrency, --max-requests and --time-limit must be positive")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="vidseek-load-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t_build = time.perf_counter()
        index, root, new_clip = build_index(work)
        build_s = time.perf_counter() - t_build
        print(f"index of 4 synthetic clips built in {build_s:.1f} s", file=sys.stderr)
        port = free_port()
        log_path = work / "server.log"
        log = open(log_path, "wb")  # noqa: SIM115 (closed in the finally below, after the server)
        proc = start_server(index, root, port, log)
        try:
            async def go() -> dict[str, Any]:
                import httpx2 as httpx

                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as c:
                    await _wait_ready(c, proc, 300.0)
                return await run_load(f"http://127.0.0.1:{port}", new_clip, concurrency=args.concurrency,
                                      max_requests=args.max_requests, time_limit=args.time_limit,
                                      baseline_s=args.baseline_s, tail_s=args.tail_s, warmup=args.warmup)

            raw = asyncio.run(go())
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        config = {k: getattr(args, k) for k in ("concurrency", "max_requests", "time_limit", "baseline_s", "tail_s",
                                                "warmup")}
        config.update({"queries": list(QUERIES), "index_build_seconds": round(build_s, 1),
                       "server": "vidseek serve (uvicorn, 1 process), local mode, 127.0.0.1",
                       "client": "httpx2 AsyncClient, same machine"})
        res = summarise(raw, config)
        if res.errors:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print("server log (last lines):\n" + "\n".join(tail), file=sys.stderr)
    write_json(args.out, asdict(res))
    print(_table(res))
    print(f"wrote {args.out}")
    return 0 if res.errors == 0 and res.ingested_searchable_without_restart else 1


if __name__ == "__main__":
    sys.exit(main())
