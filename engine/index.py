"""An index directory: catalog + joint vector store + lexical index + manifest.

Layout::

    DIR/manifest.json     format, encoders (names, dims, versions), blocks, config, times
    DIR/catalog.sqlite    source of truth (engine.catalog), with the op log
    DIR/vectors/          joint vectors, sharded FAISS (engine.vectors)
    DIR/lexical/          BM25 (engine.lexical)
    DIR/writer.lock       held by the one writer process

Consistency: adding or deleting a video is ONE catalog transaction (the commit
point) that appends to the op log. The vector store and the lexical index each
record the last op seq they reflect (saved atomically with their state); whoever
opens the directory replays the ops after that seq (a writer saves the result, a
reader keeps it in memory). So after a crash at any point the directory reads as
the old or the new state, never a mix, and nothing committed is lost.

One copy of each vector: a segment's per-modality vectors are written to the catalog
in its commit transaction (what a replay needs) and pruned from it once the vector
store has saved that op and ``VECTOR_RETENTION_S`` has passed; from then on the store
(float16 refine rows, or float32 Flat shards) is their only copy, and
``Catalog.vectors_many`` reads them back through it (``engine.catalog.schema_vectors``).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.atomic import atomic_write_json
from engine.catalog import MODALITIES, Catalog, NewVideo, VideoRecord
from engine.config import IndexConfig
from engine.errors import CorruptIndexError, IndexLockedError, IndexMismatchError, NotFoundError
from engine.locks import acquire_writer_lock
from engine.lexical import FIELDS, LexicalDoc, open_lexical
from engine.models.base import EncoderInfo
from engine.vectors import SearchParams, VectorStore

__all__ = ["VideoIndex", "Block", "FORMAT_VERSION", "lexical_fields"]

FORMAT_VERSION = 1
_REPLAY_BATCH = 2048
# Pending vector rows stay in the catalog this long after their commit even once the
# store has saved them, so that a reader that last synced within this window replays
# in memory instead of reloading the saved store.
VECTOR_RETENTION_S = 300.0


@dataclass(frozen=True)
class Block:
    """One modality block of the joint vector: [offset, offset + dim)."""

    modality: str
    offset: int
    dim: int


def lexical_fields(video: VideoRecord, transcript: str, ocr_text: str, labels: list) -> dict[str, str]:
    """The BM25 fields of a segment. Metadata is the video's catalogue text."""
    meta = " ".join(
        x for x in [video.title or "", video.description or "", " ".join(video.tags), " ".join(video.people)] if x
    )
    return {
        "transcript": transcript,
        "ocr": ocr_text,
        "labels": " ".join(str(lab[0]) for lab in labels),
        "metadata": meta,
    }


class VideoIndex:
    """Open with ``VideoIndex.open(dir)`` (reader) or ``VideoIndex.open(dir, writer=True,
    config=..., encoders=...)`` (writer, creates the directory if needed)."""

    def __init__(self, path: Path, manifest: dict, catalog: Catalog, vectors: VectorStore, lexical, *,
                 writer: bool, lock_fd: int | None) -> None:
        self.path = path
        self.manifest = manifest
        self.catalog = catalog
        self.vectors = vectors
        self.lexical = lexical
        self.writer = writer
        self._lock_fd = lock_fd
        self._mutex = threading.RLock()
        self.config = IndexConfig.from_dict(manifest["config"], origin=str(path / "manifest.json"))
        self.encoders = {k: EncoderInfo(**v) for k, v in manifest["encoders"].items()}
        self.blocks: dict[str, Block] = {}
        off = 0
        for b in manifest["blocks"]:
            self.blocks[b["modality"]] = Block(b["modality"], off, b["dim"])
            off += b["dim"]
        self.dim = off
        self._vec_seq = vectors.applied_seq
        self._lex_seq = lexical.applied_seq
        self._retired: list[VectorStore] = []  # stores a reader replaced; closed at its next sync
        catalog.vector_source = self._store_vectors

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        writer: bool = False,
        config: IndexConfig | None = None,
        encoders: dict[str, EncoderInfo] | None = None,
        vector_shards: Sequence[int] | None = None,
    ) -> "VideoIndex":
        """``vector_shards`` (readers): load only these vector shards (a shard group of
        ``query.shards``; ``()``: none, for a router that fans vector reads out)."""
        path = Path(path)
        if writer and vector_shards is not None:
            raise ValueError("vector_shards is for readers: the writer holds every shard")
        mpath = path / "manifest.json"
        lock_fd = None
        if writer:
            path.mkdir(parents=True, exist_ok=True)
            lock_fd = _acquire_writer_lock(path)
        elif not mpath.exists():
            raise NotFoundError(
                f"{path} is not a vidseek index (no manifest.json)",
                hint="build one with `vidseek index PATH... --index DIR`",
            )
        try:
            if mpath.exists():
                manifest = _read_manifest(mpath)
                if encoders is not None:
                    _check_encoders(path, manifest, encoders)
                if config is not None and writer:
                    _check_config(path, manifest, config)
            else:
                if encoders is None:
                    raise NotFoundError(f"{path} has no index yet and no encoders were given to create one")
                config = config or IndexConfig()
                manifest = _new_manifest(config, encoders)
            vec_settings = IndexConfig.from_dict(manifest["config"], origin=str(mpath)).vector_settings(
                dim=sum(b["dim"] for b in manifest["blocks"])
            )
            catalog = Catalog(path / "catalog.sqlite", read_only=not writer)
            vdir = path / "vectors"
            if writer and not (vdir / "manifest.json").exists():
                vectors = VectorStore.create(vdir, vec_settings)
            else:
                vectors = _retry_open(lambda: VectorStore.open(vdir, expected=vec_settings, read_only=not writer,
                                                               only_shards=None if writer else vector_shards))
            lexical = _retry_open(lambda: open_lexical(path / "lexical", create=writer, read_only=not writer))
            if writer:
                manifest["updated_at"] = time.time()
                atomic_write_json(mpath, manifest)
            idx = cls(path, manifest, catalog, vectors, lexical, writer=writer, lock_fd=lock_fd)
            idx.sync()
            if writer:
                idx.prune_vectors()  # also moves an index from before schema_vectors to one copy
                idx.catalog.reclaim_space()
            return idx
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    @staticmethod
    def read_config(path: str | Path) -> IndexConfig | None:
        """The settings an existing index was built with (None if there is no index)."""
        mpath = Path(path) / "manifest.json"
        if not mpath.exists():
            return None
        return IndexConfig.from_dict(_read_manifest(mpath)["config"], origin=str(mpath))

    def close(self) -> None:
        with self._mutex:
            try:
                if self.writer:
                    self.flush()
            finally:
                self.vectors.close()
                for old in self._retired:
                    old.close()
                self._retired.clear()
                self.lexical.close()
                self.catalog.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> "VideoIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- vectors -----------------------------------------------------------------------
    def joint_vector(self, parts: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        """Concatenate modality blocks scaled by weights; a missing block stays zero."""
        w = self.config.block_weights if weights is None else weights
        out = np.zeros(self.dim, dtype=np.float32)
        for m, vec in parts.items():
            b = self.blocks.get(m)
            if b is None:
                raise ValueError(f"unknown modality {m!r}; blocks are {list(self.blocks)}")
            if vec.shape != (b.dim,):
                raise IndexMismatchError(f"{m} vector has shape {vec.shape}, block expects ({b.dim},)")
            out[b.offset : b.offset + b.dim] = float(w.get(m, 0.0)) * vec
        return out

    # -- writes ------------------------------------------------------------------------
    def add_video(self, video: NewVideo, *, replace_keys: Sequence[int] = (), save: bool = True) -> VideoRecord:
        """Commit one whole video (and drop ``replace_keys`` in the same transaction)."""
        self._require_writer()
        self._check_vectors(video)
        with self._mutex:
            key, _, _ = self.catalog.add_video(video, replace_keys=replace_keys)
            self.sync(save=save)
            return self.catalog.get_video_by_key(key)

    def append_segments(self, key: int, part: NewVideo, *, stats: dict, status: str = "live",
                        save: bool = True) -> VideoRecord:
        """Commit more segments of an existing video (a live window; see
        ``Catalog.append_segments``): one catalog transaction, then the derived indexes."""
        self._require_writer()
        self._check_vectors(part)
        with self._mutex:
            self.catalog.append_segments(key, part, stats=stats, status=status)
            self.sync(save=save)
            return self.catalog.get_video_by_key(key)

    def delete_video(self, video_id: str, *, tenant: str | None = None) -> VideoRecord:
        self._require_writer()
        with self._mutex:
            rec = self.catalog.get_video(video_id, tenant=tenant)
            self.catalog.delete_video(video_id, tenant=tenant)
            self.sync()
            return rec

    def _check_vectors(self, video: NewVideo) -> None:
        for seg in video.segments:
            for m, vec in seg.vectors.items():
                b = self.blocks.get(m)
                if b is None or vec.shape != (b.dim,):
                    raise IndexMismatchError(
                        f"segment vector {m} of {video.source} has shape {getattr(vec, 'shape', None)},"
                        f" index expects ({b.dim if b else '?'},)"
                    )

    def flush(self) -> None:
        """Persist derived state (vectors, lexical) up to the catalog's last op."""
        self._require_writer()
        with self._mutex:
            self.vectors.save(self._vec_seq)
            self.lexical.save(self._lex_seq)
            self.prune_vectors()

    def prune_vectors(self, retention_s: float | None = None) -> int:
        """Drop the catalog's pending vector rows that the saved vector store holds and
        that are older than ``retention_s`` (default ``VECTOR_RETENTION_S``); returns
        how many rows went. Modalities the store cannot give back are kept."""
        self._require_writer()
        mods = self._prunable_modalities()
        if not mods:
            return 0
        keep = VECTOR_RETENTION_S if retention_s is None else float(retention_s)
        with self._mutex:
            _seq, deleted = self.catalog.prune_vectors(self.vectors.applied_seq, mods, older_than=time.time() - keep)
        return deleted

    def _prunable_modalities(self) -> list[str]:
        """Modalities whose vectors the store gives back (its factory stores them exactly
        and their block weight is not 0: the block is the unit vector times the weight)."""
        from engine.vectors.factory import stores_exactly

        if not stores_exactly(self.vectors.settings.approx_factory, self.dim):
            return []
        return [m for m in self.blocks if float(self.config.block_weights.get(m, 0.0)) > 0]

    @property
    def seq(self) -> int:
        """The catalog op both derived indexes have applied: it changes with every
        commit or delete this handle has seen, so callers can key caches on it."""
        return min(self._vec_seq, self._lex_seq)

    def sync(self, *, save: bool = True) -> int:
        """Replay catalog ops the derived indexes have not seen; returns how many.

        A writer saves afterwards; a reader keeps the result in memory, which is how a
        long-running reader (the API) sees new videos without a restart.
        """
        with self._mutex:
            target = self.catalog.max_seq()
            if self._vec_seq >= target and self._lex_seq >= target:
                return 0
            n = 0
            if not self.writer:
                self._reload_saved_lexical()
            self._check_pruned_vectors()
            start = min(self._vec_seq, self._lex_seq)
            pending_ids: list[np.ndarray] = []
            pending_vecs: list[np.ndarray] = []
            pending_keys: list[np.ndarray] = []
            pending_docs: list[LexicalDoc] = []

            lex_add, lex_delete = self._lexical_replay_ops()

            def flush_adds() -> None:
                if pending_ids:
                    self.vectors.add(
                        np.concatenate(pending_ids), np.vstack(pending_vecs), np.concatenate(pending_keys)
                    )
                    pending_ids.clear(), pending_vecs.clear(), pending_keys.clear()
                if pending_docs:
                    lex_add(list(pending_docs))
                    pending_docs.clear()

            for op in self.catalog.ops_since(start):
                n += 1
                do_vec = op.seq > self._vec_seq
                do_lex = op.seq > self._lex_seq
                if op.op == "delete":
                    flush_adds()
                    if do_vec and len(op.segment_ids):
                        self.vectors.remove(op.segment_ids, np.full(len(op.segment_ids), op.video, np.int64))
                    if do_lex:
                        lex_delete(op.video)
                else:
                    ids, vecs, docs = self._materialise(op.video, op.segment_ids, vectors=do_vec, docs=do_lex)
                    if do_vec and len(ids):
                        pending_ids.append(ids)
                        pending_vecs.append(vecs)
                        pending_keys.append(np.full(len(ids), op.video, np.int64))
                    if do_lex and docs:
                        pending_docs.extend(docs)
                    if sum(len(x) for x in pending_ids) >= _REPLAY_BATCH:
                        flush_adds()
            flush_adds()
            self._vec_seq = max(self._vec_seq, target)
            self._lex_seq = max(self._lex_seq, target)
            if not self.writer:
                self.lexical.mark_replayed(self._lex_seq)
            if self.writer and save:
                self.flush()
            return n

    def _check_pruned_vectors(self) -> None:
        """The catalog no longer holds the vectors of ops up to its prune mark: a reader
        behind it reloads the saved store (which reaches past it); a writer behind it has
        a store folder older than its catalog, which the catalog cannot rebuild."""
        for old in self._retired:  # searches that held a replaced store have finished by now
            old.close()
        self._retired.clear()
        pruned = self.catalog.vector_prune_seq()
        if self._vec_seq >= pruned:
            return
        vdir = self.path / "vectors"
        if self.writer:
            raise CorruptIndexError(
                f"{vdir} reflects catalog op {self._vec_seq}, but the catalog keeps vectors only after op {pruned}"
                " (the store is their one copy): the vector folder is older than the catalog",
                hint="restore the whole index folder from one backup, or re-index into a new folder",
            )
        # a shard-group reader (query.shards) reloads its own group only
        fresh = _retry_open(lambda: VectorStore.open(vdir, expected=self.vectors.settings, read_only=True,
                                                     only_shards=self.vectors.only_shards))
        if fresh.applied_seq < pruned:
            fresh.close()
            raise CorruptIndexError(
                f"{vdir} was saved at op {fresh.applied_seq}, before the catalog pruned vectors up to op {pruned}",
                hint="restore the whole index folder from one backup, or re-index into a new folder",
            )
        self._retired.append(self.vectors)
        self.vectors = fresh
        self._vec_seq = fresh.applied_seq

    def _reload_saved_lexical(self) -> None:
        """Readers: reload the saved BM25 state (a writer may have saved since, which drops
        the in-memory tail); ``sync`` replays the ops after it, in memory."""
        self.lexical.refresh()
        self._lex_seq = self.lexical.replayed_seq

    def _lexical_replay_ops(self):
        """(add, delete_video) for replayed ops: a writer's tantivy index, or, since a
        reader cannot write tantivy, the lexical index's in-memory tail."""
        if self.writer:
            return self.lexical.add, self.lexical.delete_video
        return self.lexical.add_in_memory, self.lexical.delete_video_in_memory

    def _materialise(self, video_key: int, seg_ids: np.ndarray, *, vectors: bool = True, docs: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, list[LexicalDoc]]:
        """Joint vectors and lexical docs of an added video, read back from the catalog
        (its pending vector rows: ``sync`` made sure they are there when ``vectors``).
        Segments deleted since (a later op) are simply absent."""
        segs = self.catalog.get_segments(seg_ids.tolist())
        if not segs:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32), []
        video = self.catalog.get_video_by_key(video_key)
        ids = np.array(sorted(segs), dtype=np.int64)
        vecs = np.empty((0, self.dim), np.float32)
        if vectors:
            per_mod = self.catalog.vectors_many(ids.tolist(), list(self.blocks), pending_only=True)
            vecs = np.stack(
                [self.joint_vector({m: per_mod[m][i] for m in self.blocks if i in per_mod[m]}) for i in ids.tolist()]
            )
        if not docs:
            return ids, vecs, []
        return ids, vecs, _lexical_docs(video, segs)

    def lexical_docs(self, video_key: int, segment_ids: Sequence[int]) -> list[LexicalDoc]:
        """The BM25 documents of a video's segments, as ``sync`` gives them to the lexical
        index (for a BM25 shard held elsewhere: ``engine.lexical.shard``). Segments or a
        video deleted since are absent."""
        segs = self.catalog.get_segments([int(i) for i in segment_ids])
        if not segs:
            return []
        try:
            video = self.catalog.get_video_by_key(int(video_key))
        except NotFoundError:  # deleted after its segments were read
            return []
        return _lexical_docs(video, segs)

    # -- reads -------------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors.search(np.ascontiguousarray(queries, dtype=np.float32), params)

    def modality_vectors(self, segment_ids: Sequence[int], modalities: Sequence[str]) -> dict[str, dict[int, np.ndarray]]:
        """Unit vectors per modality for ``segment_ids`` (a missing modality is absent).

        Read back from the joint vectors in the vector store when it stores them
        exactly (Flat shards, or an fp16 refine stage: cosines then agree with the
        float32 vectors to about 1e-3), since each block there is the unit modality
        vector times its fixed block weight; from the catalog otherwise, and for
        modalities whose block weight is zero (the catalog keeps those rows).
        """
        mods = list(modalities)
        out: dict[str, dict[int, np.ndarray]] = {m: {} for m in mods}
        got = self._store_vectors(list(segment_ids), mods, complete=True)
        out.update(got)
        rest = [m for m in mods if m not in got]
        if rest:
            out.update(self.catalog.vectors_many(segment_ids, rest, pending_only=True))
        return out

    def _store_vectors(self, segment_ids: Sequence[int], modalities: Sequence[str], *, complete: bool = False
                       ) -> dict[str, dict[int, np.ndarray]]:
        """Per modality with a non-zero block weight, the unit vectors the store holds for
        ``segment_ids`` (the catalog's ``vector_source``). Empty when the store does
        not store exactly; ``complete`` also lists such modalities when nothing is found."""
        mods = [m for m in modalities if m in self.blocks and float(self.config.block_weights.get(m, 0.0)) > 0]
        if not mods or not len(segment_ids):
            return {m: {} for m in mods} if complete and mods else {}
        got = self.vectors.stored_vectors(np.asarray(list(segment_ids), dtype=np.int64))
        if got is None:
            return {}
        ids, joint = got
        id_list = ids.tolist()
        out: dict[str, dict[int, np.ndarray]] = {}
        for m in mods:
            b = self.blocks[m]
            block = joint[:, b.offset:b.offset + b.dim]
            norms = np.linalg.norm(block, axis=1)
            present = norms > 1e-6 * float(self.config.block_weights[m])
            unit = block / np.where(present, norms, 1.0)[:, None]
            out[m] = {id_list[r]: unit[r] for r in np.flatnonzero(present)}
        return out

    # -- reads a search makes (so that callers need not reach into the parts) ------------
    def lexical_search(self, text: str, *, k: int, fields: Sequence[str] | None = None,
                       phrases: Sequence[str] = ()) -> list:
        """BM25 hits (``.id`` = segment id, ``.score``) over ``fields`` (None: all)."""
        return self.lexical.search(text, k=k, fields=list(fields) if fields else None, phrases=list(phrases))

    def segments(self, segment_ids: Sequence[int]) -> dict:
        """Segment records by id (ids that no longer exist are absent)."""
        return self.catalog.get_segments(list(segment_ids))

    def videos_by_keys(self, keys: Sequence[int]) -> dict[int, VideoRecord]:
        return self.catalog.videos_by_keys(list(keys))

    def keyframe_vectors(self, segment_ids: Sequence[int]) -> dict:
        """Per segment id, its keyframes' (time, visual vector) pairs."""
        return self.catalog.keyframe_vectors(list(segment_ids))

    def second_vectors(self, segment_ids: Sequence[int]) -> dict:
        """Per segment id, the (time, visual vector) pairs of its 1 fps timeline frames."""
        return self.catalog.second_vectors(list(segment_ids))

    def list_videos(self, *, tenant: str | None = None, limit: int = 100) -> list[VideoRecord]:
        return self.catalog.list_videos(tenant=tenant, limit=limit)

    def timeline(self, video_key: int, start: float, end: float, kinds: Sequence[str] | None = None) -> list:
        """The video's evidence timeline units (``TimelineUnit``) overlapping ``[start, end]``."""
        return self.catalog.timeline(video_key, start, end, kinds)

    def shots_of(self, video_key: int) -> list[tuple[float, float]]:
        return self.catalog.shots_of(video_key)

    def segment_labels(self, segment_ids: Sequence[int]) -> dict:
        """Per segment id, ``{(kind, label): best score}`` of the frame labellers."""
        return self.catalog.segment_labels(list(segment_ids))

    def segments_with(self, concepts: Sequence[tuple[str, str]], *, min_score: float = 0.0, limit: int = 1000
                      ) -> dict:
        """Segments carrying any of the ``(kind, label)`` concepts, with their scores."""
        return self.catalog.segments_with(concepts, min_score=min_score, limit=limit)

    def label_frequency(self) -> tuple[int, dict]:
        """(segments, per (kind, label) the segments that carry it), cached until the
        index applies another op."""
        cached = getattr(self, "_label_df", None)
        if cached is None or cached[0] != self.seq:
            cached = (self.seq, self.catalog.label_document_frequency())
            self._label_df = cached
        return cached[1]

    def words_between(self, video_key: int, start: float, end: float) -> list:
        """The transcript's words ``[start, end, word]`` of the video's segments that
        overlap ``[start, end]``, in time order, each once."""
        return self.catalog.words_between(video_key, start, end)

    def info(self) -> dict:
        counts = self.catalog.counts()
        return {
            "path": str(self.path),
            "format_version": self.manifest["format_version"],
            "created_at": self.manifest["created_at"],
            "updated_at": self.manifest["updated_at"],
            "encoders": {k: v.as_dict() for k, v in self.encoders.items()},
            "blocks": [b.__dict__ for b in self.blocks.values()],
            "joint_dim": self.dim,
            "config": self.config.as_dict(),
            "catalog": counts,
            "vectors": self.vectors.info(),
            "lexical": {"docs": self.lexical.count(), "applied_seq": self._lex_seq,
                        "saved_seq": self.lexical.applied_seq},
            "derived": self.derived_state(counts["seq"]),
            "failures": [f.__dict__ for f in self.catalog.failures()],
            "identities": _identity_counts(self.catalog),
        }

    def derived_state(self, catalog_seq: int | None = None) -> dict:
        """Whether the saved vector and BM25 state is current with the catalog.

        ``saved_seq``: the last catalog op each saved state reflects (on disk);
        ``serving_seq``: what this handle answers from (saved plus what it replayed in
        memory). ``current`` is true only when both saved states reach the catalog's
        last op; otherwise ``replayed_in_memory`` names the ops every reader replays in
        memory (and a writer saves when it opens the index)."""
        seq = self.catalog.max_seq() if catalog_seq is None else catalog_seq
        # Read from disk: another process (a writer) may have saved since this handle opened.
        saved = {"vectors": _saved_seq(self.path / "vectors" / "manifest.json", self.vectors.applied_seq),
                 "lexical": _saved_seq(self.path / "lexical" / "lexical.json", self.lexical.applied_seq)}
        behind = min(saved.values())
        return {
            "catalog_seq": seq,
            "saved_seq": saved,
            "serving_seq": {"vectors": self._vec_seq, "lexical": self._lex_seq},
            "current": behind >= seq,
            "replayed_in_memory": None if behind >= seq else {"after_seq": behind, "to_seq": seq},
        }

    def _require_writer(self) -> None:
        if not self.writer:
            raise IndexLockedError(
                f"index {self.path} is open read-only", hint="open it with writer=True to change it"
            )


def _lexical_docs(video: VideoRecord, segs: dict) -> list[LexicalDoc]:
    """One video's segments as lexical documents, in segment id order."""
    return [LexicalDoc(int(i), video.key, lexical_fields(video, segs[i].transcript, segs[i].ocr_text, segs[i].labels))
            for i in sorted(segs)]


def _saved_seq(manifest_path: Path, fallback: int) -> int:
    """The ``applied_seq`` a derived index's manifest records now (``fallback`` when it
    cannot be read, e.g. mid-swap)."""
    import json

    try:
        return int(json.loads(manifest_path.read_text())["applied_seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(fallback)


def _acquire_writer_lock(path: Path) -> int:
    return acquire_writer_lock(
        path / "writer.lock", what=f"index {path}",
        hint="if it is a `vidseek index` run, wait for it to finish (searches can run meanwhile); if it is a"
             " `vidseek serve`, `vidseek index` hands its files to that server once the server is up (it then"
             " writes DIR/server.json); a server that writes none is an older version: ingest through its API"
             " (POST /v1/ingest) or stop it"
    )


def _new_manifest(config: IndexConfig, encoders: dict[str, EncoderInfo]) -> dict:
    from engine import __version__

    if "text" not in encoders or "image" not in encoders:
        raise ValueError("encoders must name a 'text' and an 'image' encoder")
    now = time.time()
    blocks = [
        {"modality": m, "dim": encoders["image"].dim if m == "visual" else encoders["text"].dim} for m in MODALITIES
    ]
    return {
        "format_version": FORMAT_VERSION,
        "vidseek_version": __version__,
        "created_at": now,
        "updated_at": now,
        "encoders": {k: v.as_dict() for k, v in encoders.items()},
        "blocks": blocks,
        "config": config.as_dict(),
        "lexical_fields": list(FIELDS),
    }


def _read_manifest(mpath: Path) -> dict:
    import json

    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CorruptIndexError(f"{mpath} cannot be read: {e}", hint="restore the index or rebuild it") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{mpath} has format version {manifest.get('format_version')}, this vidseek reads {FORMAT_VERSION}",
            hint="rebuild the index with this version",
        )
    return manifest


def _check_encoders(path: Path, manifest: dict, encoders: dict[str, EncoderInfo]) -> None:
    diffs = []
    for kind, info in encoders.items():
        have = manifest["encoders"].get(kind)
        if have is None:
            continue
        for key in ("name", "dim", "version"):
            if have[key] != getattr(info, key):
                diffs.append(f"{kind} encoder {key}: index has {have[key]!r}, requested {getattr(info, key)!r}")
    if diffs:
        raise IndexMismatchError(
            f"index {path} was built with other encoders: " + "; ".join(diffs),
            hint="use the same encoders, or build a new index in another folder",
        )


def _check_config(path: Path, manifest: dict, config: IndexConfig) -> None:
    have = manifest["config"]
    fixed = ("text_encoder", "image_encoder", "image_options", "shards", "block_weights")
    diffs = [f"{k}: index has {have.get(k)!r}, requested {getattr(config, k)!r}"
             for k in fixed if have.get(k) != getattr(config, k)]
    if diffs:
        raise IndexMismatchError(
            f"index {path} was built with other settings: " + "; ".join(diffs),
            hint="use the index's settings, or build a new index in another folder",
        )


def _retry_open(fn, attempts: int = 5):
    """A reader may race a writer that replaces files; the manifest swap is atomic, so
    reopening once more finds a complete state."""
    for i in range(attempts):
        try:
            return fn()
        except FileNotFoundError:
            if i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))


def _identity_counts(catalog) -> dict:
    """Face identity: the privacy switch (``enabled``) and how many identities, named
    ones, tracks and stored descriptors (docs/identities.md)."""
    from engine.identities import IdentityStore

    return IdentityStore(catalog).counts()
