"""The service's settings (``vidseek serve`` flags and ``create_app``'s argument)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Service settings. ``allowed_roots``: folders that path ingest may read (empty:
    path ingest is off). ``rate``/``burst``: token bucket per key (rate <= 0: off).
    ``ingest_speech``/``ingest_ocr``: defaults for jobs that do not say."""

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_roots: tuple[str, ...] = ()
    max_upload_bytes: int = 2 * 1024**3
    max_image_bytes: int = 20 * 1024**2
    rate: float = 20.0
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

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_image_bytes < 1:
            raise ValueError("upload limits must be positive")
        if not 1 <= self.max_k <= 1000:
            raise ValueError(f"max_k must be in 1..1000, got {self.max_k}")
