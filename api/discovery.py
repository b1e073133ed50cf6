"""How the ``vidseek`` command finds and uses a running ``vidseek serve`` of the same index.

While it runs, ``vidseek serve`` writes ``DIR/server.json`` (mode 0600): its URL, pid
and an **owner token**, a random secret made at each start. The file is removed when
the server stops; a file left by a killed server is recognised as stale (its pid is
gone, or the URL does not answer ``/healthz`` as that server) and ignored.

The owner token stands for whoever can read the index folder, who can change the
index anyway: a request carrying it (``X-Vidseek-Owner``) acts with every scope for
the tenant it names (``X-Vidseek-Tenant``, default ``default``) and may ingest any
file the server can read, without ``--allow-root``. It is never sent anywhere but the
URL in the same file, and it is not an API key: creating or revoking keys does not
change it, and it ends with the server.

The client side (``find_server``, ``ServerClient``) is ``vidseek.client``.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from engine.atomic import atomic_write_bytes
from vidseek.client import OWNER_HEADER, SERVER_FILE, TENANT_HEADER

__all__ = ["SERVER_FILE", "OWNER_HEADER", "TENANT_HEADER", "advertise", "withdraw", "new_owner_token"]


def new_owner_token() -> str:
    return secrets.token_urlsafe(32)


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "", "::"):  # bound to every interface: this machine reaches it on loopback
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def advertise(index_dir: str | Path, host: str, port: int, owner_token: str) -> Path:
    """Write ``DIR/server.json`` (0600, atomically) for the server of this process."""
    path = Path(index_dir) / SERVER_FILE
    body = {"url": _url(host, port), "pid": os.getpid(), "owner_token": owner_token, "started_at": time.time()}
    atomic_write_bytes(path, json.dumps(body).encode())  # mkstemp's file: mode 0600, owner only
    os.chmod(path, 0o600)
    return path


def withdraw(index_dir: str | Path) -> None:
    """Remove ``DIR/server.json`` if this process wrote it."""
    path = Path(index_dir) / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


