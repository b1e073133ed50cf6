"""Sharded serving: the vector shards and the BM25 index split into shard groups, each
group served by replicas (Ray actors), and a router that runs the query pipeline and fans
the vector and BM25 reads out.

Layout. An index's vectors live in ``num_shards`` FAISS shards (a video's vectors in
shard ``video_key % num_shards``). Shard group ``g`` of ``G`` holds the shards
``{s : s % G == g}``: a ``ShardGroup`` opens the index folder with only those shards
loaded (``VideoIndex.open(vector_shards=...)``), builds the BM25 shard of the same
videos in RAM (``engine.lexical.LexicalShard``, from the catalog's op log: the
documents ``VideoIndex.sync`` gives the lexical index; the saved ``lexical/`` index is
not split and keeps its format), and answers

- ``search_vectors``: the top-k over its shards (the dense runs);
- ``modality_vectors``: the exact vectors of its segments (the exact rescoring);
- ``bm25_stats`` and ``bm25_search``: the two rounds of a distributed-frequencies BM25
  search (Elasticsearch's ``dfs_query_then_fetch``): its document frequencies, documents
  and tokens per field for the query's (field, term) clauses; then its top-k scored
  with the sums of those over every group.

The router (``ShardedSearcher``, in the API process) opens the same folder with no
vector shard loaded: it holds the catalog (segments, videos, timelines: the moments) and
the query encoders, and runs the one ``Searcher`` over a ``ShardedIndex``, which is the
router's ``VideoIndex`` with those reads sent to the groups (it no longer searches its
own lexical index). So everything that is a statistic over the whole library is
computed globally: the dense top-k is the merge of the groups' top-k (the per-shard
lists that one process would merge), BM25 scores use idf and average field lengths
summed over every group (``engine.lexical.bm25``: tantivy's formula recomputed in
float32), and fusion's min-max normalisation, the concept idf and the confidence
features run in the router over the merged candidates. A distributed search therefore
returns the single-process ranking (tests/test_ray.py, tests/test_lexical_dfs.py), with
the exceptions docs/scale.md lists (BM25 ties across videos; a single process's BM25
counting deleted documents until tantivy merges them).

Replicas and failure. Each group has ``replicas`` actors (``max_restarts=-1``: Ray
restarts a dead one, which loads its shards again). The router sends a group call to
the group's replica with the fewest calls in flight; when a replica dies or is
restarting, the call is retried on another replica of the same group at once, and the
dead one stays out of rotation until its restart answers a ping. A search fails only
when every replica of a group failed it.

New commits. Every vector call of a group and every router search first runs ``index.sync()``: the
catalog's op log says which commits the loaded state lacks, and the reader path of
``engine.index`` replays them in memory (a group keeps only its shards' vectors); a
group's BM25 calls replay the same op log into its BM25 shard (adds, and deletions,
which the shard hides until it is rebuilt: ``REBUILD_DELETED_SHARE``). So a search sees
every video committed before it started, by whichever process.

Files. Router and replicas open the index folder by path: on a cluster it must be at the
same path on every node (a shared filesystem, or a copy of the saved state per node plus
the catalog, whose op log the replay reads). docs/scale.md has the layout.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.errors import InputError, VidseekError
from engine.index import VideoIndex
from engine.lexical import Bm25Stats, LexicalHit, LexicalQuery, LexicalShard
from query.plan import SearchOptions
from query.results import SearchResponse

__all__ = ["ShardGroup", "ShardedIndex", "ShardedSearcher", "NoReplicaError", "group_shards", "merge_top_k",
           "merge_lexical", "build_lexical_shard", "replay_lexical", "UNKNOWN_SHARD", "REBUILD_DELETED_SHARE", "REBUILD_MIN_DELETED"]

log = logging.getLogger("vidseek.query")

UNKNOWN_SHARD = 1 << 30  # a hit whose segment was deleted since: sorts after the known ones
# A group's BM25 shard keeps deleted videos' documents (hidden; see engine.lexical.shard)
# and is rebuilt from the catalog once they pass this share of its documents.
REBUILD_DELETED_SHARE = 0.25
REBUILD_MIN_DELETED = 1000
_LEXICAL_BATCH = 2048


class NoReplicaError(VidseekError):
    code = "no_replica"


def group_shards(num_shards: int, groups: int, group: int) -> list[int]:
    """The vector shards group ``group`` of ``groups`` holds: ``{s : s % groups == group}``."""
    if not 1 <= groups <= num_shards:
        raise InputError(f"shard groups must be in 1..{num_shards} (the index's vector shards), got {groups}",
                         hint="an index built with more shards (--config with shards = N) allows more groups")
    return [s for s in range(num_shards) if s % groups == group]


def merge_top_k(results: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-group top-k lists into one top-k in exactly the order one process gives.

    Each result is (scores, ids, shards): rows sorted by descending score, padded with
    id -1, and the vector shard of each id. One process heap-merges its shards' lists in
    shard order, so equal scores (common: a one-modality query scores 0 on every segment
    without that modality) come shard by shard, each shard's in its own order; sorting
    by (score descending, shard, place within the shard's list) reproduces that."""
    nq = len(results[0][0]) if results else 0
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    for q in range(nq):
        items = []
        for d, i, sh in results:
            seen: dict[int, int] = {}
            for score, gid, shard in zip(d[q].tolist(), i[q].tolist(), sh[q].tolist()):
                if gid < 0:
                    continue
                pos = seen.get(shard, 0)
                seen[shard] = pos + 1
                items.append((-score, shard, pos, gid))
        items.sort()
        for j, (neg, _, _, gid) in enumerate(items[:k]):
            scores[q, j] = -neg
            ids[q, j] = gid
    return scores, ids


def merge_lexical(lists: Sequence[Sequence[LexicalHit]], k: int) -> list[LexicalHit]:
    """The groups' BM25 top-k lists (disjoint documents, global scores) as one top ``k``,
    by descending score, ties by segment id (each group's list is in that order too)."""
    return heapq.nsmallest(k, (h for hits in lists for h in hits), key=lambda h: (-h.score, h.id))


def build_lexical_shard(index: VideoIndex, shards: Sequence[int]) -> tuple[LexicalShard, int]:
    """The BM25 shard of the videos in vector shards ``shards`` of ``index``, built in
    RAM from the catalog's op log; with the last op it reflects."""
    shard = LexicalShard()
    return shard, replay_lexical(index, shards, shard, 0)


def replay_lexical(index: VideoIndex, shards: Sequence[int], shard: LexicalShard, after: int) -> int:
    """Apply to ``shard`` the catalog ops after ``after`` on videos of the vector shards
    ``shards`` (the same documents ``VideoIndex.sync`` gives the lexical index); returns
    the last op seen."""
    n, own = index.config.shards, set(shards)
    seq = after
    pending: list = []
    for op in index.catalog.ops_since(after):
        seq = op.seq
        if op.video % n not in own:
            continue
        if op.op == "delete":
            shard.add(pending)
            pending = []
            shard.delete_video(op.video)
        else:
            pending.extend(index.lexical_docs(op.video, op.segment_ids.tolist()))
            if len(pending) >= _LEXICAL_BATCH:
                shard.add(pending)
                pending = []
    shard.add(pending)
    return seq


class ShardGroup:
    """One shard group's data: the index folder opened with only ``shards`` of its
    vector shards, and the BM25 shard of the same videos (``LexicalShard``, in RAM,
    built at open from the catalog's op log and kept current from it). The body of a
    replica actor (``ray.remote(ShardGroup)``), and usable in process (tests, the
    single-machine comparison)."""

    def __init__(self, index_dir: str, shards: Sequence[int]) -> None:
        self.shards = list(shards)
        self.index = VideoIndex.open(index_dir, vector_shards=self.shards)
        self._lex_lock = threading.Lock()
        t0 = time.perf_counter()
        self.lexical, self._lex_seq = build_lexical_shard(self.index, self.shards)
        self.lexical_open_s = time.perf_counter() - t0

    # -- the BM25 shard --------------------------------------------------------------------
    def _sync_lexical(self) -> LexicalShard:
        """The BM25 shard with every op committed so far; rebuilt from the catalog once
        deleted videos' documents (which it keeps hidden) outgrow ``REBUILD_DELETED_SHARE``."""
        with self._lex_lock:
            if self.index.catalog.max_seq() > self._lex_seq:
                self._lex_seq = replay_lexical(self.index, self.shards, self.lexical, self._lex_seq)
                shard = self.lexical
                if shard.deleted_docs > max(REBUILD_MIN_DELETED, REBUILD_DELETED_SHARE * (shard.num_docs +
                                                                                       shard.deleted_docs)):
                    self.lexical, self._lex_seq = build_lexical_shard(self.index, self.shards)
                    shard.close()
            return self.lexical

    def bm25_stats(self, query: LexicalQuery) -> Bm25Stats:
        """Phase 1 of a sharded BM25 search: this group's statistics for ``query``."""
        return self._sync_lexical().stats(query)

    def bm25_search(self, query: LexicalQuery, k: int, stats: Bm25Stats | None) -> list[LexicalHit]:
        """Phase 2: this group's top ``k`` scored with ``stats`` (the sum over groups;
        None: the group's own, when it is the only group)."""
        return self._sync_lexical().search(query, k, stats)

    # -- vectors ---------------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, ids, the vector shard of each id; unknown: ``UNKNOWN_SHARD``)."""
        self.index.sync()
        scores, ids = self.index.search_vectors(queries, params)
        found = np.unique(ids[ids >= 0]).tolist()
        segs = self.index.segments(found) if found else {}
        n = self.index.config.shards
        shard_of = {i: seg.video % n for i, seg in segs.items()}
        shards = np.array([[shard_of.get(i, UNKNOWN_SHARD) for i in row] for row in ids.tolist()],
                          dtype=np.int64).reshape(ids.shape)
        return scores, ids, shards

    def modality_vectors(self, segment_ids: Sequence[int], modalities: Sequence[str]
                         ) -> dict[str, dict[int, np.ndarray]]:
        self.index.sync()
        return self.index.modality_vectors(segment_ids, modalities)

    def ping(self) -> dict:
        """Who answers: process, node, shards, the catalog op applied, vectors held."""
        node = None
        try:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        except Exception:  # not in a Ray worker
            pass
        return {"pid": os.getpid(), "node": node, "shards": self.shards, "seq": self.index.seq,
                "vectors": self.index.vectors.count(), "bm25": self.lexical.info(),
                "bm25_open_s": round(self.lexical_open_s, 3)}

    def close(self) -> None:
        self.lexical.close()
        self.index.close()


class ShardedIndex:
    """The router's ``VideoIndex`` (opened with no vector shard) with the vector reads
    sent to the shard groups; every other read is the router's own (catalog, BM25).
    ``call(group, method, *args)`` runs ``ShardGroup.method`` on a replica of
    ``group``; ``call_all(method, args_per_group)`` on every group at once."""

    def __init__(self, base: VideoIndex, groups: int, call_all: Callable[[str, list[tuple]], list]) -> None:
        self._base = base
        self._groups = groups
        self._num_shards = base.config.shards
        self._call_all = call_all

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def search_vectors(self, queries: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        results = self._call_all("search_vectors", [(q, params)] * self._groups)
        return merge_top_k(results, params.k)

    def lexical_search(self, text: str, *, k: int, fields: Sequence[str] | None = None,
                       phrases: Sequence[str] = ()) -> list[LexicalHit]:
        """BM25 over the groups' shards with global statistics, in two rounds (the
        distributed-frequencies search): every group's statistics for the query's
        (field, term) clauses, summed; then every group's top ``k`` scored with the sums,
        merged by score (ties by id). The router's own lexical index is not read."""
        query = LexicalQuery.parse(text, list(fields) if fields else None, list(phrases))
        if not query.terms:
            return []
        if self._groups == 1:  # its statistics are the global ones: one round
            return self._call_all("bm25_search", [(query, k, None)])[0]
        stats = Bm25Stats.sum(self._call_all("bm25_stats", [(query,)] * self._groups))
        lists = self._call_all("bm25_search", [(query, k, stats)] * self._groups)
        return merge_lexical(lists, k)

    def modality_vectors(self, segment_ids: Sequence[int], modalities: Sequence[str]
                         ) -> dict[str, dict[int, np.ndarray]]:
        mods = list(modalities)
        out: dict[str, dict[int, np.ndarray]] = {m: {} for m in mods}
        segs = self._base.segments(list(segment_ids))
        per_group: list[list[int]] = [[] for _ in range(self._groups)]
        for i in segment_ids:
            seg = segs.get(i)
            if seg is not None:  # a segment deleted since the dense search: no vectors
                per_group[(seg.video % self._num_shards) % self._groups].append(int(i))
        asked = [g for g in range(self._groups) if per_group[g]]
        if not asked:
            return out
        results = self._call_all("modality_vectors", [(per_group[g], mods) if per_group[g] else None
                                                      for g in range(self._groups)])
        merged: dict[str, dict[int, np.ndarray]] = {}
        for res in results:
            if res is None:
                continue
            for m, vecs in res.items():
                merged.setdefault(m, {}).update(vecs)
        # In the order one process reads them from its store (shard by shard, each in the
        # order asked), so the exact rescoring multiplies the same rows in the same order
        # and gets the same float32 cosines.
        place = {int(i): (segs[i].video % self._num_shards, n) for n, i in enumerate(segment_ids) if i in segs}
        for m, vecs in merged.items():
            out[m] = dict(sorted(vecs.items(), key=lambda kv: place.get(kv[0], (UNKNOWN_SHARD, 0))))
        return out


class _Slot:
    def __init__(self, handle) -> None:
        self.handle = handle
        self.in_flight = 0
        self.probe = None  # a ping in flight while the replica restarts; None: in rotation


class ShardedSearcher:
    """``groups`` shard groups x ``replicas`` replicas on a Ray cluster (``address``:
    see ``engine.cluster.connect``), or in this process with ``ray=False`` (one object
    per group, no replicas: the fan-out and merge without the cluster). ``search`` has
    the ``Searcher.search`` signature, so the service uses it in place of a Searcher.
    ``num_cpus``: CPU slots each replica holds; ``concurrency``: calls a replica runs
    at once."""

    def __init__(self, index_dir: str | Path, *, groups: int = 1, replicas: int = 2, address: str | None = None,
                 ray: bool = True, num_cpus: float = 1, concurrency: int = 2, ranking: Any = "auto",
                 warm: bool = True) -> None:
        from query.planner import Searcher

        if replicas < 1:
            raise InputError(f"replicas must be >= 1, got {replicas}")
        self.index_dir = str(Path(index_dir).resolve())
        self.base = VideoIndex.open(self.index_dir, vector_shards=())
        self.groups = groups
        self.shards = [group_shards(self.base.config.shards, groups, g) for g in range(groups)]
        self.retries = 0  # group calls sent again to another replica after one failed
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self._connected = False
        self._ray = ray
        try:
            if ray:
                import ray as ray_

                from engine.cluster import connect

                need = groups * replicas * num_cpus
                # a local instance gets a slot for every replica (they share the cores)
                self._connected = connect(address, num_cpus=max(os.cpu_count() or 1, math.ceil(need))
                                          if address in (None, "", "local") else None)
                have = ray_.cluster_resources().get("CPU", 0.0)
                if have < need:
                    raise InputError(f"{groups} shard groups x {replicas} replicas need {need:g} CPU slots; the Ray"
                                     f" cluster has {have:g}",
                                     hint="start more nodes (`ray start --address HEAD:6379 --num-cpus N`), or ask"
                                          " for fewer --shard-groups or --replicas")
                actor = ray_.remote(ShardGroup).options(
                    num_cpus=num_cpus, max_restarts=-1, max_task_retries=0, max_concurrency=concurrency)
                self._slots = [[_Slot(actor.remote(self.index_dir, self.shards[g])) for _ in range(replicas)]
                               for g in range(groups)]
                ray_.get([s.handle.ping.remote() for row in self._slots for s in row])  # all loaded
                self._local: list[ShardGroup] = []
            else:
                self._slots = []
                self._local = [ShardGroup(self.index_dir, self.shards[g]) for g in range(groups)]
            self._pool = ThreadPoolExecutor(max(1, groups), thread_name_prefix="vidseek-fanout")
            self.index = ShardedIndex(self.base, groups, self._call_all)
            self.searcher = Searcher(self.index, ranking=ranking)
            if warm:
                self.searcher.warm_up()
        except BaseException:
            self.close()
            raise

    # -- searching ---------------------------------------------------------------------
    def warm_up(self) -> None:
        self.searcher.warm_up()

    def search(self, query: str, *, image: np.ndarray | None = None,
               options: SearchOptions | None = None) -> SearchResponse:
        self.base.sync()  # the router's catalog and BM25 see every commit before this search
        return self.searcher.search(query, image=image, options=options)

    def handles(self, group: int) -> list:
        """The replica actors of ``group`` (tests kill them)."""
        return [s.handle for s in self._slots[group]]

    # -- fan-out -----------------------------------------------------------------------
    def _call_all(self, method: str, args: list[tuple | None]) -> list:
        """``method(*args[g])`` on every group ``g`` whose args are not None, at once."""
        if not self._ray:
            return [None if a is None else getattr(self._local[g], method)(*a) for g, a in enumerate(args)]
        futs = {g: self._pool.submit(self._call, g, method, a) for g, a in enumerate(args) if a is not None}
        return [futs[g].result() if g in futs else None for g in range(len(args))]

    def _pick(self, group: int, tried: set[int]) -> int | None:
        import ray

        row = self._slots[group]
        with self._lock:
            for s in row:  # a restarted replica returns once its ping answers
                if s.probe is not None:
                    done, _ = ray.wait([s.probe], timeout=0)
                    if done:
                        try:
                            ray.get(done[0])
                            s.probe = None
                        except Exception:
                            s.probe = s.handle.ping.remote()
            up = [i for i, s in enumerate(row) if i not in tried and s.probe is None]
            if not up:  # every healthy one was tried: a restarting one may answer by now
                up = [i for i in range(len(row)) if i not in tried]
            if not up:
                return None
            start = next(self._rr)
            best = min(up, key=lambda i: (row[i].in_flight, (i - start) % len(row)))
            row[best].in_flight += 1
            return best

    def _call(self, group: int, method: str, args: tuple):
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        tried: set[int] = set()
        last: Exception | None = None
        while True:
            i = self._pick(group, tried)
            if i is None:
                raise NoReplicaError(f"every replica of shard group {group} failed: {last}",
                                     hint="see `ray status`; replicas restart on their own, retry shortly")
            slot = self._slots[group][i]
            try:
                return ray.get(getattr(slot.handle, method).remote(*args))
            except (RayActorError, ActorUnavailableError) as e:  # the replica died or is restarting
                last = e
                tried.add(i)
                with self._lock:
                    self.retries += 1
                    if slot.probe is None:
                        slot.probe = slot.handle.ping.remote()
                log.warning("replica %d of shard group %d failed (%s); retrying on another", i, group,
                            type(e).__name__)
            finally:
                with self._lock:
                    slot.in_flight -= 1

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
        for g in getattr(self, "_local", []):
            g.close()
        if getattr(self, "_slots", None):
            import ray

            for row in self._slots:
                for s in row:
                    try:
                        ray.kill(s.handle, no_restart=True)
                    except Exception:  # already gone
                        pass
            self._slots = []
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False
        self.base.close()
