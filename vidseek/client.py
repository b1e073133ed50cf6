"""Talking to a running ``vidseek serve``: find it from an index folder, and call it.

``vidseek serve`` writes ``DIR/server.json`` (``api.discovery``): its URL, pid and an
owner token. ``find_server(DIR)`` reads that file and checks that the server is alive
(its pid exists and ``/readyz`` answers as a vidseek server), so a file left by a
killed server is ignored. ``ServerClient`` makes the few JSON calls the CLI and
library programs need; an error answer raises ``ServerError`` with the server's code
and message.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError, VidseekError

__all__ = ["SERVER_FILE", "OWNER_HEADER", "TENANT_HEADER", "ServerInfo", "find_server", "read_server_file",
           "ServerClient", "ServerError"]

SERVER_FILE = "server.json"
OWNER_HEADER = "X-Vidseek-Owner"
TENANT_HEADER = "X-Vidseek-Tenant"


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says about the server of an index."""

    url: str
    pid: int
    owner_token: str | None = None
    started_at: float = 0.0
    local_mode: bool | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def read_server_file(index_dir: str | Path) -> ServerInfo | None:
    try:
        d = json.loads((Path(index_dir) / SERVER_FILE).read_text())
        return ServerInfo(str(d["url"]), int(d["pid"]), d.get("owner_token"), float(d.get("started_at", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_server(index_dir: str | Path, *, timeout: float = 2.0) -> ServerInfo | None:
    """The live server of ``index_dir``, or None: no ``server.json``, its pid is gone,
    or its URL does not answer ``/readyz`` (a stale file left by a killed server)."""
    info = read_server_file(index_dir)
    if info is None or not _pid_alive(info.pid):
        return None
    try:
        with urllib.request.urlopen(info.url + "/readyz", timeout=timeout) as r:
            body = json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:  # 503 while starting: it is there, not ready yet
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or "index_open" not in body:
        return None  # something else answers on that port
    return ServerInfo(info.url, info.pid, info.owner_token, info.started_at, bool(body.get("local_mode")))


class ServerError(VidseekError):
    """The server answered an error; ``code`` and message are the server's."""

    code = "server_error"

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"the server answered {status} {code}: {message}")
        self.code = code
        self.status = status


class ServerClient:
    """A few JSON calls to a vidseek server: with an API key (``key``), or with the
    owner token of ``server.json`` (``owner_token``, for the index's own user)."""

    def __init__(self, url: str, *, key: str | None = None, owner_token: str | None = None,
                 tenant: str | None = None, timeout: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"--server {url!r} is not an http(s) URL", hint="e.g. --server http://127.0.0.1:8000")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        if owner_token:
            self.headers[OWNER_HEADER] = owner_token
        if tenant:
            self.headers[TENANT_HEADER] = tenant

    def request(self, method: str, path: str, *, json_body: Any = None, query: dict | None = None,
                data: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        hdrs = dict(self.headers, **(headers or {}))
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read() or b"{}").get("error") or {}
            except ValueError:
                err = {}
            raise ServerError(err.get("code", "http_error"), err.get("message", e.reason), e.code) from None
        except OSError as e:
            raise VidseekError(f"cannot reach the server at {self.url}: {e}",
                               hint="is `vidseek serve` running there?") from e
        return json.loads(raw) if raw else None

    def search(self, q: str, *, k: int = 10, per_video: int = 1, fusion: str = "auto", rerank: bool = False,
               offset: int = 0, image: bytes | None = None, min_confidence: str | None = None) -> dict:
        extra = {"min_confidence": min_confidence} if min_confidence else {}
        if image is None:
            return self.request("POST", "/v1/search", json_body={"q": q, "k": k, "per_video": per_video,
                                                                  "fusion": fusion, "rerank": rerank,
                                                                  "offset": offset, **extra})
        boundary = uuid.uuid4().hex
        fields = {"q": q, "k": str(k), "per_video": str(per_video), "fusion": fusion,
                  "rerank": "true" if rerank else "false", "offset": str(offset), **extra}
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n".encode()
                        for n, v in fields.items())
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"query.img\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", "/v1/search", data=body, content_type=f"multipart/form-data; boundary={boundary}")

    def ingest_path(self, path: str, *, metadata: dict | None = None, speech: bool | None = None,
                    ocr: bool | None = None, idempotency_key: str | None = None) -> dict:
        body = {"path": path, **(metadata or {}), "speech": speech, "ocr": ocr}
        hdrs = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/v1/ingest", json_body=body, headers=hdrs)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{urllib.parse.quote(job_id)}")

    def delete(self, video_id: str) -> dict:
        return self.request("DELETE", f"/v1/videos/{urllib.parse.quote(video_id)}")
