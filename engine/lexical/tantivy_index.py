"""The serving lexical backend: BM25 over tantivy (Rust), incremental and persistent.

Layout of one index folder::

    DIR/lexical.json     manifest: format, tokenizer version, fields, applied_seq,
                         the tantivy opstamp it describes, counts, times (atomic JSON)
    DIR/tantivy/         tantivy's own files (meta.json, segments, lock files)

Text is tokenised by :func:`engine.lexical.tokenize.tokenize` and indexed as
space-joined tokens with tantivy's ``whitespace`` tokenizer (positions recorded, so
phrase queries work); tantivy never needs CJK support of its own. Queries are built
as ``Query`` objects (term, phrase, boolean), never through tantivy's query parser,
so no user character (``: " ( - *``) has a syntax meaning.

Scoring is tantivy's BM25 (k1 = 1.2, b = 0.75, Lucene's idf
``ln(1 + (N - n + 0.5) / (n + 0.5))``), one term query per (field, term), summed.
Like Lucene, N and n count deleted documents until tantivy merges their segment, and
a document length is stored in one byte (exact up to about 40 tokens, coarser above).

Visibility and durability
-------------------------
- ``add`` / ``delete_video`` are buffered in tantivy's writer. ``search`` and
  ``count`` see them (read-your-writes): when there are buffered changes they first
  make a tantivy commit, *without* recording an ``applied_seq``.
- ``save(applied_seq)`` commits tantivy (atomic on disk: segments are written, then
  ``meta.json`` is replaced), then writes ``lexical.json`` atomically
  (``engine.atomic``).

Recovery rule: the ``applied_seq`` in ``lexical.json`` is a *lower bound* of what the
tantivy files contain. A crash before a commit loses the buffered changes; a crash
between a tantivy commit (from ``save`` or from a read) and the manifest write leaves
tantivy ahead of ``applied_seq``. Either way the caller (``engine.index``) replays the
operations after ``applied_seq``; that is safe because ``add`` replaces by id and
``delete_video`` deletes by term, so applying an operation twice gives the state of
applying it once. ``info()["tantivy_ahead_of_manifest"]`` tells when this happened.

Readers and the op-log tail: a read-only handle cannot write tantivy, yet the catalog
may hold operations after the saved ``applied_seq`` (a writer killed between its
commit and its save). The caller (``engine.index``) replays them into the handle's
*in-memory tail* (``add_in_memory``, ``delete_video_in_memory``, ``mark_replayed``): a
RAM tantivy index of the replayed docs, plus the ids and video keys whose saved copies
it hides. ``search`` and ``count`` answer from both, so a reader finds what the catalog
holds without waiting for a writer. A replayed doc is scored by BM25 over the tail's
own statistics (its document frequencies), so until a writer saves it its score next to
saved docs is approximate; what is found is exact. ``refresh`` drops the tail when the
saved ``applied_seq`` moved (the caller replays what is still missing);
``replayed_seq`` is the last operation the handle reflects.

Concurrency: one writer per folder (tantivy's lock file; a second writer gets
``IndexLockedError``). ``read_only=True`` never takes the writer lock, so several
reader processes can serve the folder while one writer works; a reader's searches
pick up new commits by themselves within about half a second (tantivy watches
``meta.json``), or at once with :meth:`TantivyIndex.refresh`, which also re-reads the
manifest (a reader's ``applied_seq`` is the one read at open or at the last refresh).
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import tantivy

from engine.atomic import atomic_write_json
from engine.errors import (
    CorruptIndexError,
    IndexLockedError,
    IndexMismatchError,
    InputError,
    NotFoundError,
    UnknownNameError,
)
from engine.lexical.base import FIELDS, LexicalDoc, LexicalHit
from engine.lexical.tokenize import TOKENIZER_VERSION, tokenize

__all__ = ["LexicalManifest", "TantivyIndex", "LexicalQuery", "MANIFEST_NAME", "MAX_QUERY_TERMS", "MAX_K", "ID_FIELD",
           "VIDEO_KEY_FIELD", "bm25_query", "doc_tokens", "lexical_schema", "resolve_fields", "tantivy_document"]

log = logging.getLogger(__name__)

MANIFEST_NAME = "lexical.json"
_TANTIVY_DIR = "tantivy"
_FORMAT = "vidseek-lexical"
_FORMAT_VERSION = 1
_BACKEND = "tantivy"
ID_FIELD = "id"
VIDEO_KEY_FIELD = "video_key"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# tantivy's minimum writer arena is 15 MB per indexing thread.
_MIN_HEAP_PER_THREAD = 15_000_000

MAX_K = 10_000
# A pasted paragraph as a query would make hundreds of clauses per field; BM25 over
# the first 128 distinct terms ranks the same documents in practice.
MAX_QUERY_TERMS = 128


@dataclass(frozen=True)
class LexicalManifest:
    """What ``lexical.json`` holds; checked on every open."""

    format: str
    format_version: int
    backend: str
    tokenizer_version: str
    fields: tuple[str, ...]
    applied_seq: int
    tantivy_opstamp: int  # the tantivy commit this applied_seq was recorded with
    num_docs: int
    tantivy_version: str
    created_at: float
    updated_at: float

    @classmethod
    def new(cls) -> "LexicalManifest":
        now = time.time()
        return cls(
            format=_FORMAT,
            format_version=_FORMAT_VERSION,
            backend=_BACKEND,
            tokenizer_version=TOKENIZER_VERSION,
            fields=FIELDS,
            applied_seq=0,
            tantivy_opstamp=0,
            num_docs=0,
            tantivy_version=_tantivy_version(),
            created_at=now,
            updated_at=now,
        )

    @classmethod
    def load(cls, path: Path) -> "LexicalManifest":
        """Parse ``path``; ``CorruptIndexError`` when it is not a valid manifest."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(
                format=str(raw["format"]),
                format_version=int(raw["format_version"]),
                backend=str(raw["backend"]),
                tokenizer_version=str(raw["tokenizer_version"]),
                fields=tuple(str(f) for f in raw["fields"]),
                applied_seq=int(raw["applied_seq"]),
                tantivy_opstamp=int(raw["tantivy_opstamp"]),
                num_docs=int(raw["num_docs"]),
                tantivy_version=str(raw["tantivy_version"]),
                created_at=float(raw["created_at"]),
                updated_at=float(raw["updated_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptIndexError(
                f"Lexical index manifest {path} cannot be read: {e}",
                hint="restore the folder from a backup or rebuild the lexical index",
            ) from e
        return manifest

    def check(self, path: Path) -> None:
        """Raise ``IndexMismatchError`` when this code cannot serve the folder as is."""
        if self.format != _FORMAT or self.format_version != _FORMAT_VERSION or self.backend != _BACKEND:
            raise IndexMismatchError(
                f"{path} is a {self.format} v{self.format_version} index with backend "
                f"{self.backend!r}; this code reads {_FORMAT} v{_FORMAT_VERSION} ({_BACKEND})",
                hint="rebuild the lexical index with this version of vidseek",
            )
        if self.tokenizer_version != TOKENIZER_VERSION:
            raise IndexMismatchError(
                f"{path} was tokenised by tokenizer v{self.tokenizer_version}; this code "
                f"tokenises queries with v{TOKENIZER_VERSION}, so terms would not match",
                hint="rebuild the lexical index",
            )
        if self.fields != FIELDS:
            raise IndexMismatchError(
                f"{path} has fields {list(self.fields)}; this code expects {list(FIELDS)}",
                hint="rebuild the lexical index",
            )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d


def _tantivy_version() -> str:
    try:
        from importlib.metadata import version

        return version("tantivy")
    except Exception:  # metadata missing in odd installs; the manifest only records it
        return "unknown"


def lexical_schema(*, stored_text: bool = False) -> tantivy.Schema:
    """The tantivy schema of a lexical index. Its text is not stored: the catalog holds
    it; the index only needs postings, positions (phrases) and field norms (BM25).
    ``stored_text``: the RAM shards of ``engine.lexical.shard``, which read a candidate's
    term frequencies and field lengths back from the stored (tokenised) text."""
    sb = tantivy.SchemaBuilder()
    for name in FIELDS:
        sb.add_text_field(name, stored=stored_text, tokenizer_name="whitespace", index_option="position")
    sb.add_integer_field(ID_FIELD, stored=False, indexed=True, fast=True)
    sb.add_integer_field(VIDEO_KEY_FIELD, stored=False, indexed=True, fast=True)
    return sb.build()


_EXPECTED_SCHEMA_FIELDS = (*FIELDS, ID_FIELD, VIDEO_KEY_FIELD)


def _check_int64(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an int, got {value!r}")
    if not (_INT64_MIN <= value <= _INT64_MAX):
        raise InputError(f"{name} {value} does not fit in int64")
    return value


def _unique(tokens: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def _phrase_tokens(phrases: Sequence[str]) -> list[list[str]]:
    """The tokens of each phrase; phrases with none are dropped."""
    out = []
    for phrase in phrases:
        if not isinstance(phrase, str):
            raise InputError(f"each phrase must be str, got {type(phrase).__name__}")
        toks = tokenize(phrase)
        if toks:  # a phrase of stop words or punctuation cannot constrain anything
            out.append(toks)
    return out


def resolve_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """The searched fields: ``None`` is all of ``FIELDS``; unknown names raise."""
    if fields is None:
        return FIELDS
    if isinstance(fields, str):  # a bare "ocr" would iterate as characters
        fields = (fields,)
    resolved = tuple(dict.fromkeys(fields))
    if not resolved:
        raise InputError("fields is empty", hint=f"pass None for all fields, or some of {list(FIELDS)}")
    for name in resolved:
        if name not in FIELDS:
            raise UnknownNameError("lexical field", name, FIELDS)
    return resolved


@dataclass(frozen=True)
class LexicalQuery:
    """A search's BM25 query: the searched ``names``, the distinct ``terms`` (query and
    phrase tokens, at most ``MAX_QUERY_TERMS``) and the tokens of each phrase."""

    names: tuple[str, ...]
    terms: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, query: str, fields: Sequence[str] | None = None, phrases: Sequence[str] = ()) -> "LexicalQuery":
        """Validate and tokenise the arguments of ``search``; ``terms`` is empty when
        the query and phrases have no token."""
        if not isinstance(query, str):
            raise InputError(f"query must be str, got {type(query).__name__}")
        if isinstance(phrases, str):
            raise InputError("phrases must be a sequence of str, got a str", hint="wrap it: phrases=[...]")
        names = resolve_fields(fields)
        phrase_tokens = _phrase_tokens(phrases)
        terms = _unique([*tokenize(query), *(t for toks in phrase_tokens for t in toks)])
        return cls(names, tuple(terms[:MAX_QUERY_TERMS]), tuple(tuple(t) for t in phrase_tokens))

    @property
    def clauses(self) -> list[tuple[str, str]]:
        """The scored (field, term) clauses, in the order of the boolean query."""
        return [(name, term) for name in self.names for term in self.terms]


def bm25_query(schema: tantivy.Schema, query: LexicalQuery,
               boosts: Mapping[tuple[str, str], float] | None = None) -> tantivy.Query:
    """Each term OR-ed over the fields (a clause per (field, term), boosted by ``boosts``
    where given); each phrase a Must clause that adds no score."""
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
    for name, term in query.clauses:
        q = tantivy.Query.term_query(schema, name, term)
        boost = None if boosts is None else boosts.get((name, term))
        if boost is not None and boost != 1.0:
            q = tantivy.Query.boost_query(q, float(boost))
        clauses.append((tantivy.Occur.Should, q))
    for toks in query.phrases:
        if len(toks) == 1:  # tantivy's PhraseQuery needs two terms or more
            alternatives = [tantivy.Query.term_query(schema, name, toks[0]) for name in query.names]
        else:
            alternatives = [tantivy.Query.phrase_query(schema, name, list(toks)) for name in query.names]
        anywhere = (
            alternatives[0]
            if len(alternatives) == 1
            else tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in alternatives])
        )
        clauses.append((tantivy.Occur.Must, tantivy.Query.const_score_query(anywhere, 0.0)))
    return tantivy.Query.boolean_query(clauses)


def doc_tokens(doc: LexicalDoc) -> dict[str, list[str]]:
    """The tokens of each field of ``doc`` (fields without a token are absent); raises
    ``InputError`` / ``UnknownNameError`` on a bad row."""
    if not isinstance(doc, LexicalDoc):
        raise InputError(f"add() takes LexicalDoc rows, got {type(doc).__name__}")
    _check_int64("LexicalDoc.id", doc.id)
    _check_int64("LexicalDoc.video_key", doc.video_key)
    out: dict[str, list[str]] = {}
    for name, text in doc.fields.items():
        if name not in FIELDS:
            raise UnknownNameError("lexical field", name, FIELDS)
        if not isinstance(text, str):
            raise InputError(f"LexicalDoc {doc.id} field {name!r} must be str, got {type(text).__name__}")
        tokens = tokenize(text)
        if tokens:
            out[name] = tokens
    return out


def tantivy_document(doc: LexicalDoc, tokens: Mapping[str, list[str]]) -> tantivy.Document:
    """The tantivy document of ``doc`` whose fields tokenise to ``tokens`` (``doc_tokens``)."""
    tdoc = tantivy.Document()
    tdoc.add_integer(ID_FIELD, doc.id)
    tdoc.add_integer(VIDEO_KEY_FIELD, doc.video_key)
    for name, toks in tokens.items():
        tdoc.add_text(name, " ".join(toks))
    return tdoc


def _tantivy_exists(path: Path) -> bool:
    # tantivy.Index.exists raises ValueError when the folder itself is missing.
    return path.is_dir() and tantivy.Index.exists(str(path))


def _dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except FileNotFoundError:  # tantivy's garbage collection removed it meanwhile
            continue
    return total


class _MemoryTail:
    """What a read-only handle replayed in memory after the saved ``applied_seq``."""

    def __init__(self, schema: tantivy.Schema, base_seq: int) -> None:
        self.index = tantivy.Index(schema)  # no path: in RAM
        self.writer = self.index.writer(heap_size=_MIN_HEAP_PER_THREAD, num_threads=1)
        self.base_seq = base_seq  # the saved applied_seq this tail starts after
        self.seq = base_seq  # the last operation replayed
        self.ids: set[int] = set()  # docs added here: their saved copies are stale
        self.deleted_videos: set[int] = set()  # videos deleted here: their saved docs are gone
        self.dirty = False

    def searcher(self) -> tantivy.Searcher:
        if self.dirty:
            self.writer.commit()
            self.index.reload()
            self.dirty = False
        return self.index.searcher()

    def close(self) -> None:
        self.writer.rollback()
        self.writer.wait_merging_threads()


class TantivyIndex:
    """A persistent, incremental BM25 index of segment text in one folder (tantivy).

    Implements ``engine.lexical.base.LexicalIndexProtocol``. See the module docstring
    for the folder layout, visibility, the recovery rule and concurrency.

    Args:
        path: the index folder.
        create: create the folder and an empty index when there is none.
        read_only: open without the writer lock; ``add``/``delete_video``/``save``
            raise ``InputError``.
        writer_heap_bytes: tantivy's indexing arena, shared by the writer threads
            (at least 15 MB per thread).
        writer_threads: tantivy indexing threads (1 suits a small machine; the
            benchmark uses more for bulk builds).

    Raises:
        NotFoundError: no index at ``path`` and ``create`` is false (or read-only).
        IndexMismatchError: built with another format, tokenizer or field list.
        CorruptIndexError: the manifest or tantivy's files cannot be read.
        IndexLockedError: another writer holds the folder (``read_only=False``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        read_only: bool = False,
        writer_heap_bytes: int = 64_000_000,
        writer_threads: int = 1,
    ) -> None:
        if writer_threads < 1:
            raise InputError(f"writer_threads must be >= 1, got {writer_threads}")
        if writer_heap_bytes < _MIN_HEAP_PER_THREAD * writer_threads:
            raise InputError(
                f"writer_heap_bytes={writer_heap_bytes} is below tantivy's minimum of "
                f"{_MIN_HEAP_PER_THREAD} bytes per thread ({writer_threads} threads)"
            )
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._schema = lexical_schema()
        self._manifest_path = self.path / MANIFEST_NAME
        self._tantivy_path = self.path / _TANTIVY_DIR
        self._writer: tantivy.IndexWriter | None = None
        self._dirty = False  # buffered writer operations not yet committed
        self._closed = False
        self._tail: _MemoryTail | None = None  # read-only handles: ops replayed in memory

        self._manifest = self._open_manifest(create)
        self._index = self._open_tantivy()
        committed = self._committed_opstamp()
        self._opstamp = committed
        # Tantivy ahead of the manifest: a crash (or a read-triggered commit) after a
        # tantivy commit and before the manifest write. Harmless: the caller replays.
        self.tantivy_ahead_of_manifest = committed != self._manifest.tantivy_opstamp
        if self.tantivy_ahead_of_manifest:
            log.info(
                "lexical index %s: tantivy commit %d is newer than the manifest's %d "
                "(applied_seq=%d); operations after applied_seq will be replayed",
                self.path, committed, self._manifest.tantivy_opstamp, self._manifest.applied_seq,
            )
        if not read_only:
            self._writer = self._open_writer(writer_heap_bytes, writer_threads)
        # Reload now so that this handle starts on the latest commit; afterwards
        # tantivy's watcher on meta.json reloads readers of other processes' commits.
        self._index.reload()

    # ------------------------------------------------------------------ opening

    def _open_manifest(self, create: bool) -> LexicalManifest:
        if self._manifest_path.exists():
            manifest = LexicalManifest.load(self._manifest_path)
            manifest.check(self.path)
            return manifest
        if not create or self.read_only:
            raise NotFoundError(
                f"No lexical index at {self.path} ({MANIFEST_NAME} is missing)",
                hint="create it with create=True (read-only opens never create)",
            )
        if _tantivy_exists(self._tantivy_path):
            # The manifest is written before tantivy's files exist, so tantivy data
            # without a manifest was not made by this code (or the manifest was lost).
            raise CorruptIndexError(
                f"{self._tantivy_path} holds a tantivy index but {self._manifest_path} is missing",
                hint="restore the manifest or delete the folder and rebuild the lexical index",
            )
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = LexicalManifest.new()
        atomic_write_json(self._manifest_path, manifest.to_json())
        return manifest

    def _open_tantivy(self) -> tantivy.Index:
        path = str(self._tantivy_path)
        if not _tantivy_exists(self._tantivy_path):
            if self._manifest.applied_seq != 0 or self._manifest.num_docs != 0:
                raise CorruptIndexError(
                    f"{self._tantivy_path} is missing but {self._manifest_path} records "
                    f"applied_seq={self._manifest.applied_seq}, num_docs={self._manifest.num_docs}",
                    hint="restore the folder from a backup or rebuild the lexical index",
                )
            if self.read_only:
                raise NotFoundError(
                    f"The lexical index at {self.path} was never initialised",
                    hint="open it once for writing to finish creating it",
                )
            # An interrupted creation (manifest written, tantivy not yet): finish it.
            self._tantivy_path.mkdir(parents=True, exist_ok=True)
            return tantivy.Index(self._schema, path=path, reuse=True)
        self._check_tantivy_schema()
        try:
            return tantivy.Index.open(path)
        except ValueError as e:
            raise CorruptIndexError(
                f"tantivy cannot open {self._tantivy_path}: {e}",
                hint="restore the folder from a backup or rebuild the lexical index",
            ) from e

    def _read_meta(self) -> dict[str, Any]:
        meta_path = self._tantivy_path / "meta.json"
        try:
            return json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CorruptIndexError(
                f"tantivy's {meta_path} cannot be read: {e}",
                hint="restore the folder from a backup or rebuild the lexical index",
            ) from e

    def _check_tantivy_schema(self) -> None:
        meta = self._read_meta()
        try:
            names = tuple(f["name"] for f in meta["schema"])
            tokenizers = {
                f["name"]: f["options"]["indexing"]["tokenizer"] for f in meta["schema"] if f["type"] == "text"
            }
        except (KeyError, TypeError) as e:
            raise CorruptIndexError(
                f"tantivy's meta.json in {self._tantivy_path} has no readable schema: {e}",
                hint="rebuild the lexical index",
            ) from e
        if names != _EXPECTED_SCHEMA_FIELDS or any(t != "whitespace" for t in tokenizers.values()):
            raise IndexMismatchError(
                f"tantivy schema in {self._tantivy_path} is {list(names)} with tokenizers "
                f"{tokenizers}; expected {list(_EXPECTED_SCHEMA_FIELDS)} with 'whitespace'",
                hint="rebuild the lexical index",
            )

    def _committed_opstamp(self) -> int:
        if not (self._tantivy_path / "meta.json").exists():
            return 0
        try:
            return int(self._read_meta().get("opstamp", 0))
        except (TypeError, ValueError) as e:
            raise CorruptIndexError(
                f"tantivy's meta.json in {self._tantivy_path} has a bad opstamp: {e}",
                hint="rebuild the lexical index",
            ) from e

    def _open_writer(self, heap: int, threads: int) -> tantivy.IndexWriter:
        try:
            return self._index.writer(heap_size=heap, num_threads=threads)
        except ValueError as e:
            if "LockBusy" in str(e):
                raise IndexLockedError(
                    f"Another process (or handle) is writing the lexical index at {self.path}",
                    hint="close the other writer, or open with read_only=True to search",
                ) from e
            raise

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"The lexical index at {self.path} is closed", hint="open it again")

    def _require_writer(self, op: str) -> tantivy.IndexWriter:
        self._check_open()
        if self._writer is None:
            raise InputError(
                f"Cannot {op}: the lexical index at {self.path} is open read-only",
                hint="open it with read_only=False (one writer at a time)",
            )
        return self._writer

    def _commit(self, writer: tantivy.IndexWriter) -> None:
        """Commit buffered changes to tantivy and make them visible to this handle."""
        self._opstamp = int(writer.commit())
        self._dirty = False
        self._index.reload()

    def _sync(self) -> None:
        """Read-your-writes: commit buffered changes before a read (see module doc)."""
        with self._lock:
            self._check_open()
            if self._dirty and self._writer is not None:
                self._commit(self._writer)

    # ------------------------------------------------------------------ protocol

    @property
    def applied_seq(self) -> int:
        """The op-log sequence number that the last ``save`` recorded (a lower bound)."""
        return self._manifest.applied_seq

    @property
    def replayed_seq(self) -> int:
        """The last operation this handle reflects: ``applied_seq``, or later for a
        read-only handle that replayed operations in memory."""
        tail = self._tail
        return tail.seq if tail is not None else self._manifest.applied_seq

    def add(self, docs: Sequence[LexicalDoc]) -> None:
        """Index ``docs``; a doc whose id exists replaces it (so a replay is harmless).

        The whole batch is validated and tokenised before anything is buffered, so a
        bad row leaves the index untouched.
        """
        with self._lock:
            writer = self._require_writer("add documents")
            prepared = [(doc.id, tantivy_document(doc, doc_tokens(doc))) for doc in docs]
            for doc_id, tdoc in prepared:
                # The delete's opstamp precedes the add's, so it removes older copies
                # (committed or buffered) and never the document added just after.
                writer.delete_documents_by_term(ID_FIELD, doc_id)
                writer.add_document(tdoc)
            if prepared:
                self._dirty = True

    def delete_video(self, video_key: int) -> None:
        """Delete every doc of ``video_key`` (a no-op when there is none)."""
        with self._lock:
            writer = self._require_writer("delete a video")
            writer.delete_documents_by_term(VIDEO_KEY_FIELD, _check_int64("video_key", video_key))
            self._dirty = True

    # ------------------------------------------------------------------ in-memory tail

    def _require_reader(self, op: str) -> _MemoryTail:
        self._check_open()
        if self._writer is not None:
            raise InputError(f"Cannot {op} in memory: the lexical index at {self.path} is open for writing",
                             hint="a writer applies operations with add()/delete_video() and save()")
        if self._tail is None:
            self._tail = _MemoryTail(self._schema, self._manifest.applied_seq)
        return self._tail

    def add_in_memory(self, docs: Sequence[LexicalDoc]) -> None:
        """Read-only handles: replay an add in memory (a doc id added again replaces it)."""
        with self._lock:
            tail = self._require_reader("add documents")
            prepared = [(doc.id, tantivy_document(doc, doc_tokens(doc))) for doc in docs]
            for doc_id, tdoc in prepared:
                tail.writer.delete_documents_by_term(ID_FIELD, doc_id)
                tail.writer.add_document(tdoc)
                tail.ids.add(doc_id)
            if prepared:
                tail.dirty = True

    def delete_video_in_memory(self, video_key: int) -> None:
        """Read-only handles: replay a video's deletion in memory."""
        with self._lock:
            tail = self._require_reader("delete a video")
            key = _check_int64("video_key", video_key)
            tail.writer.delete_documents_by_term(VIDEO_KEY_FIELD, key)
            tail.deleted_videos.add(key)
            tail.dirty = True

    def mark_replayed(self, seq: int) -> None:
        """Read-only handles: operations up to ``seq`` are replayed (in memory)."""
        with self._lock:
            seq = _check_int64("seq", seq)
            if seq <= self.replayed_seq:
                return
            self._require_reader("record replayed operations").seq = seq

    def _drop_tail(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None:
            tail.close()

    def _hidden(self, tail: _MemoryTail) -> list[tantivy.Query]:
        """Queries matching the saved docs that the tail replaces or deleted."""
        out = []
        if tail.ids:
            out.append(tantivy.Query.term_set_query(self._schema, ID_FIELD, sorted(tail.ids)))
        if tail.deleted_videos:
            out.append(tantivy.Query.term_set_query(self._schema, VIDEO_KEY_FIELD, sorted(tail.deleted_videos)))
        return out

    def _hidden_count(self, tail: _MemoryTail) -> int:
        hidden = self._hidden(tail)
        if not hidden:
            return 0
        q = tantivy.Query.boolean_query([(tantivy.Occur.Should, h) for h in hidden])
        return int(self._index.searcher().search(q, limit=1, count=True).count)

    def search(
        self,
        query: str,
        k: int = 10,
        fields: Sequence[str] | None = None,
        phrases: Sequence[str] = (),
    ) -> list[LexicalHit]:
        """Top ``k`` docs by BM25 summed over ``fields`` (all when ``None``).

        ``query`` is tokenised and its distinct terms are OR-ed. Each phrase is
        tokenised too and must occur as an exact token sequence in one searched field
        (a one-token phrase: that token must occur); its words also join the scored
        terms, while the phrase match itself adds no score, so scores stay plain
        BM25 of the terms. A query and phrases with no tokens give ``[]``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= MAX_K):
            raise InputError(f"k must be an int in 1..{MAX_K}, got {k!r}")
        parsed = LexicalQuery.parse(query, fields, phrases)
        if not parsed.terms:
            return []
        return self._top_hits(bm25_query(self._schema, parsed), k)

    def _top_hits(self, bool_query: tantivy.Query, k: int) -> list[LexicalHit]:
        """Run ``bool_query``; its top ``k`` docs by score, with their ids (the saved
        docs and, on a read-only handle, the in-memory tail)."""
        self._sync()
        tail = self._tail
        if tail is None:  # the common case: no lock, searches run side by side
            return self._hits(self._index.searcher(), bool_query, k)
        with self._lock:  # a consistent view of the tail (a sync may be replaying into it)
            hidden = self._hidden(tail)
            tail_searcher = tail.searcher()
        saved_query = bool_query if not hidden else tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, bool_query), *((tantivy.Occur.MustNot, h) for h in hidden)])
        hits = self._hits(self._index.searcher(), saved_query, k) + self._hits(tail_searcher, bool_query, k)
        return sorted(hits, key=lambda h: (-h.score, h.id))[:k]

    def _hits(self, searcher: tantivy.Searcher, query: tantivy.Query, k: int) -> list[LexicalHit]:
        # count=False: counting every match would defeat tantivy's block-max WAND.
        hits = searcher.search(query, limit=k, count=False).hits
        if not hits:
            return []
        ids = searcher.fast_field_values(ID_FIELD, [addr for _, addr in hits])
        out = []
        for (score, _), doc_id in zip(hits, ids):
            if doc_id is None or not math.isfinite(score):
                raise CorruptIndexError(
                    f"lexical index {self.path} returned a hit without an id (score {score})",
                    hint="rebuild the lexical index",
                )
            out.append(LexicalHit(id=int(doc_id), score=float(score)))
        return out

    def count(self) -> int:
        """Live (not deleted) docs, including changes not yet saved (and, on a read-only
        handle, the operations replayed in memory)."""
        self._sync()
        tail = self._tail
        if tail is None:
            return int(self._index.searcher().num_docs)
        with self._lock:
            return int(self._index.searcher().num_docs) - self._hidden_count(tail) + int(tail.searcher().num_docs)

    def save(self, applied_seq: int) -> None:
        """Commit to tantivy, then record ``applied_seq`` in the manifest (atomically).

        ``applied_seq`` may not go backwards. See the module docstring for what a
        crash between the two steps leaves and why replaying is safe.
        """
        with self._lock:
            writer = self._require_writer("save")
            seq = _check_int64("applied_seq", applied_seq)
            if seq < self._manifest.applied_seq:
                raise InputError(
                    f"applied_seq {seq} is behind the saved {self._manifest.applied_seq} for {self.path}",
                    hint="save with the sequence number of the last operation applied",
                )
            if self._dirty:
                self._commit(writer)
            manifest = LexicalManifest(
                **{
                    **asdict(self._manifest),
                    "applied_seq": seq,
                    "tantivy_opstamp": self._opstamp,
                    "num_docs": int(self._index.searcher().num_docs),
                    "updated_at": time.time(),
                }
            )
            atomic_write_json(self._manifest_path, manifest.to_json())
            self._manifest = manifest
            self.tantivy_ahead_of_manifest = False

    # ------------------------------------------------------------------ extras

    def refresh(self) -> None:
        """Read-only handles: load the newest commit and manifest now (dropping the
        in-memory tail when the saved ``applied_seq`` moved)."""
        with self._lock:
            self._check_open()
            if self._writer is not None:
                self._sync()
                return
            manifest = LexicalManifest.load(self._manifest_path)
            manifest.check(self.path)
            if self._tail is not None and manifest.applied_seq != self._tail.base_seq:
                self._drop_tail()  # a writer saved: the caller replays what is still missing
            self._manifest = manifest
            self._index.reload()

    def info(self) -> dict[str, Any]:
        """A JSON-able description for ``vidseek info``."""
        self._sync()
        searcher = self._index.searcher()
        tail = self._tail
        return {
            "backend": _BACKEND,
            "path": str(self.path),
            "read_only": self.read_only,
            "num_docs": self.count(),
            "saved_docs": int(searcher.num_docs),
            "replayed_seq": self.replayed_seq,
            "in_memory": None if tail is None else {
                "after_seq": tail.base_seq, "to_seq": tail.seq, "docs": int(tail.searcher().num_docs),
                "hidden_saved_docs": self._hidden_count(tail),
            },
            "num_segments": int(searcher.num_segments),
            "applied_seq": self._manifest.applied_seq,
            "tantivy_opstamp": self._opstamp,
            "tantivy_ahead_of_manifest": self.tantivy_ahead_of_manifest,
            "tokenizer_version": self._manifest.tokenizer_version,
            "tantivy_version": self._manifest.tantivy_version,
            "fields": list(FIELDS),
            "disk_bytes": _dir_bytes(self.path),
            "created_at": self._manifest.created_at,
            "updated_at": self._manifest.updated_at,
        }

    def close(self) -> None:
        """Release the writer lock. Changes not yet committed (see ``save``) are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_tail()
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.rollback()  # drop buffered, uncommitted operations explicitly
                # Let background merges finish so the next open sees fewer segments;
                # this also drops the writer and its lock file lock.
                writer.wait_merging_threads()

    def __enter__(self) -> "TantivyIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "writer"
        return f"TantivyIndex({str(self.path)!r}, {mode}, applied_seq={self.applied_seq})"
