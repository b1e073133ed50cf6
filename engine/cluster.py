"""Joining a Ray cluster (distributed ingest, search replicas): one place for the
connection rules, so the indexer and the query side connect the same way."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from engine.errors import InputError

__all__ = ["connect", "LOCAL"]

LOCAL = "local"  # `--ray` without an address: start a Ray instance on this machine


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address`` ("auto": the one this machine belongs to;
    "host:port": the head's GCS address), or start a local one (None or "local", with
    ``num_cpus`` CPU slots, default every core). Reuses a connection this process
    already has. Returns True when this call connected (the caller then disconnects
    with ``ray.shutdown()``)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    # Workers import vidseek from the same tree as this driver (on a local cluster; the
    # nodes of a remote one must have the same vidseek installed at the same path).
    here = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(p for p in [here, os.environ.get("PYTHONPATH", "")] if p),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    kwargs["runtime_env"] = {"env_vars": env}
    if address in (None, "", LOCAL):
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise InputError(f"no Ray cluster at {address}: {e}",
                         hint="start one with `ray start --head` (and `ray start --address HEAD:6379` on each"
                              " worker node), or pass --ray without an address for a local one") from None
    return True
