"""Webhooks: a POST to the configured URL when a job ends (``vidseek serve --webhook URL``).

Body: ``{"event": "job.done" | "job.failed", "delivery_id", "sent_at", "job": {...}}``
(the job as ``GET /v1/jobs/{id}`` shows it). Headers:

- ``X-Vidseek-Event``: the event; ``X-Vidseek-Delivery``: the delivery id (the same on
  every retry of one delivery, so a receiver can drop repeats);
- ``X-Vidseek-Signature: t=UNIX_TIME,v1=HEX``, where HEX is
  ``HMAC-SHA256(secret, f"{t}.{raw body}")``. A receiver recomputes it with the secret
  and refuses a mismatch or an old ``t`` (replays): ``verify_signature`` does both.

Delivery is at least once: a receiver that answers anything but 2xx, or does not
answer, gets the same delivery again after 1, 2, 4 ... s (``backoff_s`` doubling), up to
``attempts`` tries; then it is logged and dropped. Deliveries run on their own thread,
so a slow receiver never holds up ingest. The secret is ``--webhook-secret-file``'s
content, else one kept in the service database (``python -m api.keys webhook-secret
--index DIR`` prints it).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

__all__ = ["WebhookConfig", "Webhooks", "sign", "verify_signature", "SIGNATURE_HEADER"]

log = logging.getLogger("vidseek.api.webhooks")

SIGNATURE_HEADER = "X-Vidseek-Signature"


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how to deliver: ``url`` (http or https), tries and the first retry delay."""

    url: str
    attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {self.url!r} is not http(s)")
        if self.attempts < 1 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("webhook attempts must be >= 1, backoff >= 0 and timeout > 0")


def sign(secret: bytes, body: bytes, t: int | None = None) -> str:
    """The ``X-Vidseek-Signature`` value of ``body`` at time ``t``."""
    t = int(time.time()) if t is None else int(t)
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, *, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Webhooks:
    """Signs and delivers job events on a background thread (``notify`` never blocks)."""

    def __init__(self, config: WebhookConfig, secret: bytes) -> None:
        self.config = config
        self._secret = secret
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._stop = threading.Event()
        self.delivered = 0  # deliveries a receiver took (2xx)
        self.dropped = 0  # deliveries given up after every try
        self._thread = threading.Thread(target=self._loop, name="vidseek-webhooks", daemon=True)
        self._thread.start()

    def notify(self, job: dict) -> None:
        """Queue the event of a finished job (``job``: its public dict)."""
        event = "job.done" if job.get("status") == "done" else "job.failed"
        self._queue.put({"event": event, "delivery_id": "d" + secrets.token_hex(8), "job": job})

    def close(self, grace_s: float = 5.0) -> None:
        """Stop after the deliveries queued now, or after ``grace_s``."""
        self._queue.put(None)
        self._thread.join(grace_s)
        self._stop.set()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(item)

    def _deliver(self, item: dict) -> None:
        delay = self.config.backoff_s
        for attempt in range(1, self.config.attempts + 1):
            body = json.dumps({**item, "sent_at": time.time()}).encode()
            req = urllib.request.Request(self.config.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "vidseek-webhooks",
                "X-Vidseek-Event": item["event"], "X-Vidseek-Delivery": item["delivery_id"],
                SIGNATURE_HEADER: sign(self._secret, body)})
            try:
                with urllib.request.urlopen(req, timeout=self.config.timeout_s) as r:
                    if 200 <= r.status < 300:
                        self.delivered += 1
                        return
                    why = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                why = f"HTTP {e.code}"
            except OSError as e:
                why = str(e)
            log.warning("webhook %s for job %s: try %d of %d failed (%s)", item["delivery_id"],
                        item["job"].get("job_id"), attempt, self.config.attempts, why)
            if attempt < self.config.attempts and self._stop.wait(delay):
                break
            delay *= 2
        self.dropped += 1
        log.error("webhook %s for job %s dropped after %d tries", item["delivery_id"], item["job"].get("job_id"),
                  self.config.attempts)
