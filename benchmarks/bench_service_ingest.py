"""The service's ingest throughput: clips POSTed to ``/v1/ingest`` of a running
``vidseek serve``, timed from the first POST until every job has ended.

    python -m benchmarks.bench_service_ingest --mode local --clips 71 --out local.json
    python -m benchmarks.bench_service_ingest --mode ray --clips 71 --out ray.json

``local``: the service's own job queue (one job at a time in the server process).
``ray``: ``vidseek serve --ray --replicas 0``, a local Ray instance that the service
starts itself, ingest jobs analysed on its actors, as many at once as it has CPU slots,
each committed in the server (docs/scale.md). The server's start (and Ray's) is not
timed. Each run indexes into a fresh folder under ``--scratch`` and stops the server
at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.bench_api_load import start_server
from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, free_port, write_json

__all__ = ["main", "run"]


def _call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def _seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return (c.duration or 0) / 1e6


def run(mode: str, media: Path, clips: int, scratch: Path, start_timeout: float = 300.0) -> dict:
    """Start a server in ``mode``, ingest the first ``clips`` files of ``media``, stop it."""
    files = sorted(p for p in media.iterdir() if p.is_file() and p.suffix not in (".tsv", ".md", ".txt"))
    files = files[:clips] if clips else files
    idx = scratch / f"service-{mode}"
    shutil.rmtree(idx, ignore_errors=True)
    idx.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(scratch / f"service-{mode}.log", "wb")
    proc = start_server(idx, media.resolve(), port, log, extra=["--ray", "--replicas", "0"] if mode == "ray" else (),
                        new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                _call(base, "GET", "/healthz")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start; see {log.name}") from None
                time.sleep(0.5)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        jobs = [_call(base, "POST", "/v1/ingest", {"path": str(f.resolve())})["job_id"] for f in files]
        ended: dict[str, str] = {}
        while len(ended) < len(jobs):
            for j in jobs:
                if j not in ended:
                    status = _call(base, "GET", f"/v1/jobs/{j}")["status"]
                    if status in ("done", "failed"):
                        ended[j] = status
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    secs = sum(_seconds(f) for f in files)
    return {"mode": mode, "clips": len(files), "media_seconds": round(secs, 1), "wall_seconds": round(wall, 1),
            "speed_x_realtime": round(secs / wall, 2), "jobs": {s: list(ended.values()).count(s) for s in set(ended.values())},
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_service_ingest", __doc__)
    add_media(p, SHARED_MEDIA)
    p.add_argument("--mode", choices=("local", "ray"), default="local")
    p.add_argument("--clips", type=int, default=0, help="the first N files of --media (0: all)")
    p.add_argument("--scratch", type=Path, default=Path("bench-results/service-ingest"))
    add_out(p, None)
    args = p.parse_args(argv)
    res = run(args.mode, args.media, args.clips, args.scratch)
    print(json.dumps(res))
    if args.out:
        write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
