"""Search replicas on a Ray cluster, behind one router.

``SearchReplica`` is a Ray actor that holds one read-only ``VideoIndex`` of the index
folder (its FAISS shards, BM25 index and the catalog the exact rescoring reads) and a
``Searcher`` with its encoders loaded; every search runs the whole query pipeline in
the replica, so a replica's answer is the single-process answer by construction (same
code, same data, same global statistics). ``ReplicaRouter`` starts ``replicas`` of them
and sends each search to the replica with the fewest searches in flight.

Failure: a replica whose process or node dies is restarted by Ray (``max_restarts=-1``:
always) and loads the index again; the router retries the search that failed on
another replica at once, and keeps the dead one out of rotation until its restart
answers a ping. A search fails only when every replica failed it.

New commits: a replica calls ``index.sync()`` before each search, which reads the
catalog's op log and replays the ops its loaded state lacks (the reader path of
``engine.index``), exactly as ``vidseek serve`` does in one process; so a replica sees
every video committed before the search started, whichever process committed it.

Where the files come from: a replica opens the index folder by path, so on a cluster
the folder must be at the same path on every node that runs a replica (a shared
filesystem: NFS, CephFS, Lustre, or a read-only copy refreshed by rsync of the saved
state plus the catalog, whose op log the replica replays). docs/scale.md has the layout.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import VidseekError
from query.plan import SearchOptions
from query.results import SearchResponse

__all__ = ["SearchReplica", "ReplicaRouter", "NoReplicaError"]

log = logging.getLogger("vidseek.query")


class NoReplicaError(VidseekError):
    code = "no_replica"


class SearchReplica:
    """The body of one replica actor (``ray.remote(SearchReplica)``); also usable in
    process, which is how tests compare it with a plain ``Searcher``."""

    def __init__(self, index_dir: str, *, warm: bool = True, ranking: Any = "auto") -> None:
        from engine.index import VideoIndex
        from query.planner import Searcher

        self.index = VideoIndex.open(index_dir)
        self.searcher = Searcher(self.index, ranking=ranking)
        if warm:
            self.searcher.warm_up()
        self.started = os.getpid()

    def search(self, query: str, image: np.ndarray | None = None,
               options: SearchOptions | None = None) -> SearchResponse:
        self.index.sync()  # the op log: commits made since the last search
        return self.searcher.search(query, image=image, options=options)

    def ping(self) -> dict:
        """Who answers: the process, the node, the catalog op this replica has applied."""
        node = None
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # not in a Ray worker
            pass
        return {"pid": os.getpid(), "node": node, "seq": self.index.seq}


class _Slot:
    def __init__(self, handle) -> None:
        self.handle = handle
        self.in_flight = 0
        self.probe = None  # a ping in flight while the replica restarts; None: in rotation


class ReplicaRouter:
    """``replicas`` ``SearchReplica`` actors over ``index_dir``; ``search`` has the
    ``Searcher.search`` signature, so the service uses it in place of a Searcher.
    ``num_cpus``: CPU slots each replica holds; ``concurrency``: searches one replica
    runs at once (its Searcher is thread-safe)."""

    def __init__(self, index_dir: str | Path, replicas: int = 2, *, address: str | None = None,
                 num_cpus: float = 1, concurrency: int = 1, ranking: Any = "auto", warm: bool = True) -> None:
        import ray

        from engine.cluster import connect

        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.index_dir = str(Path(index_dir).resolve())
        self._connected = connect(address, num_cpus=None)
        actor = ray.remote(SearchReplica).options(
            num_cpus=num_cpus, max_restarts=-1, max_task_retries=0, max_concurrency=concurrency)
        self._slots = [_Slot(actor.remote(self.index_dir, warm=warm, ranking=ranking)) for _ in range(replicas)]
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self.retries = 0  # searches sent again to another replica after one failed
        ray.get([s.handle.ping.remote() for s in self._slots])  # every replica loaded (raises if one cannot)

    @property
    def replicas(self) -> int:
        return len(self._slots)

    def handles(self) -> list:
        return [s.handle for s in self._slots]

    def warm_up(self) -> None:
        """The replicas warm themselves when they start; nothing to load here."""

    def _pick(self, tried: set[int]) -> int | None:
        import ray

        with self._lock:
            for s in self._slots:  # a restarted replica returns once its ping answers
                if s.probe is not None:
                    done, _ = ray.wait([s.probe], timeout=0)
                    if done:
                        try:
                            ray.get(done[0])
                            s.probe = None
                        except Exception:
                            s.probe = s.handle.ping.remote()
            up = [i for i, s in enumerate(self._slots) if i not in tried and s.probe is None]
            if not up:  # every healthy one was tried: a restarting one may answer by now
                up = [i for i in range(len(self._slots)) if i not in tried]
            if not up:
                return None
            start = next(self._rr)
            best = min(up, key=lambda i: (self._slots[i].in_flight, (i - start) % len(self._slots)))
            self._slots[best].in_flight += 1
            return best

    def search(self, query: str, *, image: np.ndarray | None = None,
               options: SearchOptions | None = None) -> SearchResponse:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        tried: set[int] = set()
        last: Exception | None = None
        while True:
            i = self._pick(tried)
            if i is None:
                raise NoReplicaError(f"all {len(self._slots)} search replicas failed this search: {last}",
                                     hint="see `ray status`; replicas restart on their own")
            slot = self._slots[i]
            try:
                return ray.get(slot.handle.search.remote(query, image, options))
            except (RayActorError, ActorUnavailableError) as e:  # the replica died or is restarting
                last = e
                tried.add(i)
                with self._lock:
                    self.retries += 1
                    if slot.probe is None:
                        slot.probe = slot.handle.ping.remote()
                log.warning("search replica %d failed (%s); retrying on another", i, type(e).__name__)
            finally:
                with self._lock:
                    slot.in_flight -= 1

    def close(self) -> None:
        import ray

        for s in self._slots:
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:  # already gone
                pass
        self._slots = []
        if self._connected:
            ray.shutdown()
