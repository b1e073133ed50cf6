"""Request metrics (Prometheus text format) and the access log: one JSON line per
request on the ``vidseek.access`` logger, and an ``X-Request-ID`` on every response."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from fastapi import FastAPI, Request

__all__ = ["Metrics", "install_access_log"]

access_log = logging.getLogger("vidseek.access")

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counts and latency histograms by route, in the Prometheus text format.

    Written by hand: prometheus_client is not a dependency. Routes are the path
    templates (``/v1/videos/{video_id}``), so the label set stays bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, int], int] = {}
        self.hist: dict[tuple[str, str], list[float]] = {}  # bucket counts + [sum, count]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            k = (method, route, status)
            self.counts[k] = self.counts.get(k, 0) + 1
            h = self.hist.setdefault((method, route), [0.0] * (len(_BUCKETS) + 2))
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        def esc(v: str) -> str:
            return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        out = ["# HELP vidseek_http_requests_total HTTP requests by method, route and status.",
               "# TYPE vidseek_http_requests_total counter"]
        with self._lock:
            for (m, r, s), n in sorted(self.counts.items()):
                out.append(f'vidseek_http_requests_total{{method="{m}",route="{esc(r)}",status="{s}"}} {n}')
            out += ["# HELP vidseek_http_request_seconds Request latency by method and route.",
                    "# TYPE vidseek_http_request_seconds histogram"]
            for (m, r), h in sorted(self.hist.items()):
                lab = f'method="{m}",route="{esc(r)}"'
                for b, n in zip(_BUCKETS, h):
                    out.append(f'vidseek_http_request_seconds_bucket{{{lab},le="{b}"}} {int(n)}')
                out.append(f'vidseek_http_request_seconds_bucket{{{lab},le="+Inf"}} {int(h[-1])}')
                out.append(f"vidseek_http_request_seconds_sum{{{lab}}} {h[-2]:.6f}")
                out.append(f"vidseek_http_request_seconds_count{{{lab}}} {int(h[-1])}")
        for name, (help_text, value) in sorted(gauges.items()):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(out) + "\n"


async def _access(request: Request, call_next):
    t0 = time.perf_counter()
    rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
    request.state.request_id = rid
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers["X-Request-ID"] = rid
        return response
    finally:
        dt = time.perf_counter() - t0
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        svc = getattr(request.app.state, "svc", None)
        if svc is not None:
            svc.metrics.observe(request.method, route, status, dt)
        principal = getattr(request.state, "principal", None)
        # One JSON line per request; the query string is left out (it may carry a signed link).
        access_log.info(json.dumps({
            "ts": round(time.time(), 3), "request_id": rid, "method": request.method,
            "path": request.url.path, "route": route, "status": status, "ms": round(dt * 1000, 2),
            "tenant": getattr(principal, "tenant", None), "key_id": getattr(principal, "key_id", None),
            "client": request.client.host if request.client else None,
        }))


def install_access_log(app: FastAPI) -> None:
    """Time, count and log every request of ``app`` (metrics go to ``app.state.svc``)."""
    app.middleware("http")(_access)
