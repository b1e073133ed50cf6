"""Registry of text and image encoders, with one shared cache of built encoders.

Encoders are looked up by name (``get_text_encoder("minilm")``,
``get_image_encoder("imagenet-minilm")``). Each (kind, name, options) triple is
built once per process and shared, so the indexer and the query path use the same
loaded weights. Options are bound against the factory's signature first, so
``get_text_encoder("minilm")`` and ``get_text_encoder("minilm", batch_size=64)``
(64 being the default) are the same cache entry, and a misspelt option fails with
the list of valid ones instead of a bare ``TypeError``.

Factories are cheap: they build an encoder object whose weights load on its first
encode. Built-in factories import their module on first use, so importing this
registry pulls in no model library.
"""
from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any, Callable, Hashable, Mapping

from engine.errors import InputError, UnknownNameError
from engine.models.base import ImageEncoder, TextEncoder

__all__ = [
    "register_text_encoder",
    "register_image_encoder",
    "get_text_encoder",
    "get_image_encoder",
    "list_encoders",
    "clear_encoder_cache",
]

Factory = Callable[..., Any]

_lock = threading.RLock()
_factories: dict[str, dict[str, Factory]] = {"text": {}, "image": {}}
_cache: dict[tuple[str, str, Hashable], Any] = {}


def _lazy(module: str, attr: str) -> Factory:
    """A factory that imports ``module`` only when an encoder is first requested.

    The wrapper copies the target's signature so that option binding (and so the
    cache key and the error for unknown options) sees the real parameters.
    """

    def target() -> Factory:
        return getattr(importlib.import_module(module), attr)

    def factory(**options: Any) -> Any:
        return target()(**options)

    factory.__vidseek_target__ = target  # type: ignore[attr-defined]
    factory.__name__ = f"{module}.{attr}"
    return factory


def _register(kind: str, name: str, factory: Factory, replace: bool) -> None:
    if not isinstance(name, str) or not name:
        raise InputError(f"encoder name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise InputError(f"factory for {kind} encoder {name!r} is not callable: {factory!r}")
    with _lock:
        _ensure_builtins()
        if name in _factories[kind] and not replace:
            raise InputError(
                f"{kind} encoder {name!r} is already registered",
                hint="pass replace=True to override it",
            )
        _factories[kind][name] = factory
        # Entries built by an older factory under this name must not be served again.
        for key in [k for k in _cache if k[0] == kind and k[1] == name]:
            del _cache[key]


def register_text_encoder(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Register ``factory(**options) -> TextEncoder`` under ``name``."""
    _register("text", name, factory, replace)


def register_image_encoder(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Register ``factory(**options) -> ImageEncoder`` under ``name``."""
    _register("image", name, factory, replace)


def _freeze(value: Any, where: str) -> Hashable:
    """A hashable, order-independent form of an option value, for the cache key."""
    if isinstance(value, Mapping):
        return ("__map__",) + tuple(
            sorted((str(k), _freeze(v, where)) for k, v in value.items())
        )
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where) for v in value)
    if isinstance(value, (set, frozenset)):
        return ("__set__",) + tuple(sorted(_freeze(v, where) for v in value))
    try:
        hash(value)
    except TypeError as e:
        raise InputError(
            f"encoder option {where!r} has an unhashable value of type {type(value).__name__}",
            hint="pass strings, numbers, booleans, or lists/dicts of those",
        ) from e
    return value


def _signature(factory: Factory) -> inspect.Signature:
    target = getattr(factory, "__vidseek_target__", None)
    return inspect.signature(target() if target is not None else factory)


def _bind(kind: str, name: str, factory: Factory, options: dict[str, Any]) -> dict[str, Any]:
    """Options with the factory's defaults filled in; unknown options raise InputError."""
    sig = _signature(factory)
    try:
        bound = sig.bind(**options)
    except TypeError as e:
        valid = [
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        raise InputError(
            f"bad options {sorted(options)} for {kind} encoder {name!r}: {e}",
            hint=f"valid options: {valid}",
        ) from e
    bound.apply_defaults()
    return dict(bound.arguments)


def _get(kind: str, name: str, options: dict[str, Any]) -> Any:
    with _lock:
        _ensure_builtins()
        factories = _factories[kind]
        if name not in factories:
            raise UnknownNameError(f"{kind} encoder", name, list(factories))
        factory = factories[name]
        arguments = _bind(kind, name, factory, options)
        key = (kind, name, _freeze(arguments, name))
        encoder = _cache.get(key)
        if encoder is None:
            # Held under the lock: construction is cheap by contract, and holding it
            # guarantees that two threads asking at once get the same object.
            encoder = factory(**options)
            _cache[key] = encoder
        return encoder


def get_text_encoder(name: str, **options: Any) -> TextEncoder:
    """The shared text encoder ``name`` built with ``options``."""
    return _get("text", name, options)


def get_image_encoder(name: str, **options: Any) -> ImageEncoder:
    """The shared image encoder ``name`` built with ``options``."""
    return _get("image", name, options)


def list_encoders() -> dict[str, list[str]]:
    """Registered encoder names: ``{"text": [...], "image": [...]}``, sorted."""
    with _lock:
        _ensure_builtins()
        return {kind: sorted(f) for kind, f in _factories.items()}


def clear_encoder_cache() -> None:
    """Forget every built encoder (their weights are freed once unreferenced)."""
    with _lock:
        _cache.clear()


_builtins_done = False


def _ensure_builtins() -> None:
    """Register the built-in encoders once; callers hold ``_lock``."""
    global _builtins_done
    if _builtins_done:
        return
    _builtins_done = True
    builtin_text = {
        "minilm": _lazy("engine.models.text", "MiniLMEncoder"),
        "e5-multilingual": _lazy("engine.models.text", "E5MultilingualEncoder"),
        "sentence-transformers": _lazy("engine.models.text", "SentenceTransformerEncoder"),
    }
    builtin_image = {
        "imagenet-minilm": _lazy("engine.models.imagenet", "ImageNetConSEEncoder"),
        # Need EfficientNet-Lite0 converted once to ONNX (scripts/setup.sh); the first is
        # the default (engine.config), measured against the others in docs/labels.md.
        "imagenet-effnet-minilm": _lazy("engine.models.imagenet", "EfficientNetConSEEncoder"),
        "imagenet-ensemble-minilm": _lazy("engine.models.imagenet", "ImageNetEnsembleEncoder"),
        "open_clip": _lazy("engine.models.openclip", "OpenClipEncoder"),
    }
    _factories["text"].update(builtin_text)
    _factories["image"].update(builtin_image)
