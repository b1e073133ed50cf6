"""The service's settings (``vidseek serve`` flags and ``create_app``'s argument)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from api.auth import validate_tenant
from api.webhooks import WebhookConfig
from engine.errors import InputError

__all__ = ["Settings", "DEFAULT_TENANT", "DEFAULT_RATE", "parse_allow_roots"]

# The tenant of local mode (no keys) and of `vidseek index`'s default --tenant.
DEFAULT_TENANT = "default"
# Requests a second per API key when ``--rate`` is not given (bursts of ``burst``).
DEFAULT_RATE = 20.0


@dataclass(frozen=True)
class Settings:
    """Service settings. Path ingest reads only inside a tenant's own allowed roots:
    ``tenant_roots`` (tenant -> folders) and ``allowed_roots``, the folders of the
    ``default`` tenant (local mode's; ``--allow-root DIR`` without a tenant). A tenant
    with none cannot ingest by path. ``rate``/``burst``: token bucket per key; ``rate``
    None (the default) is ``DEFAULT_RATE`` for keys and no limit in local single-user
    mode (one person on loopback: a benchmark of sequential searches must not get 429),
    a number applies to every caller, local mode included, and ``rate <= 0`` is off.
    ``ingest_speech``/``ingest_ocr``: defaults for jobs that do not say."""

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_roots: tuple[str, ...] = ()
    tenant_roots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_upload_bytes: int = 2 * 1024**3
    max_image_bytes: int = 20 * 1024**2
    rate: float | None = None
    burst: float = 40.0
    max_k: int = 100
    ingest_speech: bool = True
    ingest_ocr: bool = True
    shutdown_grace_s: float = 30.0
    link_ttl_s: float = 3600.0
    warm_models: bool = True
    # Search on the writer handle (always current: add_video syncs it) rather than on a
    # second, read-only handle that replays commits with sync(): one copy of the FAISS
    # shards in memory instead of two. The read-only handle is opened only when it
    # serves: when this is False, or while another process holds the writer lock.
    search_on_writer: bool = True
    # A POST to this URL when a job ends (api.webhooks), signed with webhook_secret (None:
    # a secret kept in the service database, `python -m api.keys webhook-secret`).
    webhook: WebhookConfig | None = None
    webhook_secret: bytes | None = None
    # Write DIR/server.json while running (api.discovery), so that `vidseek search` and
    # `vidseek index` on the same index go through this server. `vidseek serve` sets it.
    advertise: bool = False
    # Browser-playable previews of videos a browser cannot play as they are
    # (indexer.previews): the most bytes <index>/previews may hold (LRU eviction).
    preview_budget_bytes: int = 2 * 1024**3
    # Searches fan out to shard_groups groups of the vector shards, each served by this
    # many replicas on a Ray cluster (query.shards.ShardedSearcher) at ray_address
    # ("local": a Ray instance on this machine); replicas 0: all in this process.
    replicas: int = 0
    shard_groups: int = 1
    ray_address: str | None = None
    # Ingest jobs analysed on the Ray cluster at ray_address (indexer.distributed.AnalysisPool,
    # the actors of `vidseek index --ray`), up to ingest_slots at once (None: every CPU slot
    # the search replicas leave, more as nodes join), each committed in this process; False:
    # in this process, one job at a time.
    ray_ingest: bool = False
    ingest_slots: int | None = None

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_image_bytes < 1:
            raise ValueError("upload limits must be positive")
        if not 1 <= self.max_k <= 1000:
            raise ValueError(f"max_k must be in 1..1000, got {self.max_k}")
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")
        if self.ingest_slots is not None and self.ingest_slots < 1:
            raise ValueError(f"ingest_slots must be >= 1 (or None: every free slot), got {self.ingest_slots}")
        if isinstance(self.allowed_roots, str):
            raise ValueError("allowed_roots is a tuple of folders, not one string")
        for tenant, roots in self.tenant_roots.items():
            validate_tenant(tenant)
            if isinstance(roots, str):
                raise ValueError(f"tenant_roots[{tenant!r}] is a tuple of folders, not one string")

    def rate_for(self, local_mode: bool) -> float:
        """The token-bucket rate that applies (<= 0: no limit): the explicit ``rate``,
        else none in local mode and ``DEFAULT_RATE`` with keys."""
        if self.rate is not None:
            return float(self.rate)
        return 0.0 if local_mode else DEFAULT_RATE

    def roots_for(self, tenant: str) -> tuple[str, ...]:
        """The folders ``tenant`` may ingest from by path (none: path ingest is off for it)."""
        own = tuple(self.tenant_roots.get(tenant, ()))
        return own + tuple(self.allowed_roots) if tenant == DEFAULT_TENANT else own


def parse_allow_roots(values: Sequence[str]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``--allow-root`` values -> (the default tenant's roots, roots per tenant).

    ``TENANT=DIR`` gives DIR to that tenant only; a bare ``DIR`` (an absolute path, or
    one that starts with ``.`` or ``~``, or has no ``=``) is the default tenant's (local
    mode). Each folder must exist; it is stored resolved (links followed)."""
    default: list[str] = []
    per: dict[str, list[str]] = {}
    for value in values:
        tenant, sep, folder = value.partition("=")
        bare = not sep or value.startswith((os.sep, ".", "~"))
        if bare:
            tenant, folder = DEFAULT_TENANT, value
        elif not tenant or not folder:
            raise InputError(f"--allow-root {value!r} names no tenant or no folder",
                             hint="use --allow-root TENANT=DIR, or --allow-root DIR for the default tenant")
        else:
            try:
                validate_tenant(tenant)
            except InputError as e:
                raise InputError(f"--allow-root {value!r}: {e.message}", hint=e.hint) from None
        real = os.path.realpath(os.path.expanduser(folder))
        if not os.path.isdir(real):
            raise InputError(f"--allow-root {value!r}: {folder} is not a folder on this server",
                             hint="create it, or fix the path")
        (default if bare else per.setdefault(tenant, [])).append(real)
    return tuple(default), {t: tuple(r) for t, r in per.items()}
