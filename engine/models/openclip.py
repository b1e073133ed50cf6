"""``open_clip``: CLIP-family visual encoder for users who bring their own weights.

No CLIP weights ship in any package (MODELS.md), so this encoder is the opt-in
upgrade over ``imagenet-minilm``. Options:

- ``architecture``: an open_clip model config name (``open_clip.list_models()``,
  e.g. ``"ViT-B-32"``, or one added with ``open_clip.add_model_config``).
- exactly one of ``checkpoint`` (a local ``.pt``/``.bin``/``.safetensors`` file,
  the offline path) or ``pretrained`` (an open_clip tag such as
  ``"laion2b_s34b_b79k"``, downloaded by open_clip; fails offline with a hint to
  pass ``checkpoint``).
- ``labels``: an optional vocabulary for zero-shot ``labels()``; without it
  ``labels()`` returns ``[]`` per image.

``info.version`` is ``"{architecture}:sha256={first 16 hex of the checkpoint}"`` or
``"{architecture}:{tag}"``. Nothing is imported or loaded until ``info`` or an
encode method is first used.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine import accel
from engine.atomic import sha256_file
from engine.errors import InputError, MissingDependencyError, NotFoundError, UnknownNameError
from engine.models.base import EncoderInfo
from engine.models.imagenet import check_rgb_image
from engine.models.text import as_text_list, l2_normalise

__all__ = ["OpenClipEncoder"]

FEATURE = "the 'open_clip' visual encoder"
DEFAULT_LABEL_PROMPT = "a photo of a {}"


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as e:
        raise MissingDependencyError("open-clip-torch", FEATURE) from e
    return open_clip


@dataclass
class _Loaded:
    model: Any  # open_clip CLIP / CustomTextCLIP, eval mode
    preprocess: Callable[[Any], Any]  # PIL image -> (3, S, S) tensor
    tokenizer: Callable[[list[str]], Any]
    label_embeddings: np.ndarray | None  # (len(labels), dim) or None
    logit_scale: float


class OpenClipEncoder:
    """An open_clip model from a local checkpoint or a pretrained tag (see module doc)."""

    def __init__(
        self,
        *,
        architecture: str,
        checkpoint: str | None = None,
        pretrained: str | None = None,
        labels: Sequence[str] | None = None,
        label_prompt: str = DEFAULT_LABEL_PROMPT,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(architecture, str) or not architecture:
            raise InputError(f"open_clip: architecture must be a model config name, got {architecture!r}")
        if (checkpoint is None) == (pretrained is None):
            raise InputError(
                "open_clip needs exactly one of checkpoint=<file> or pretrained=<tag>",
                hint="offline, pass checkpoint=/path/to/weights.pt",
            )
        self.checkpoint: Path | None = None
        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise NotFoundError(
                    f"open_clip checkpoint {str(checkpoint)!r} does not exist or is not a file",
                    hint="pass the path of a .pt, .bin or .safetensors file",
                )
            self.checkpoint = path.resolve()
        if labels is not None:
            labels = as_text_list(labels, "open_clip labels option")
            if not labels:
                raise InputError("open_clip: labels option is empty", hint="omit it or give label names")
        if not isinstance(label_prompt, str) or label_prompt.count("{}") != 1:
            raise InputError(f"label_prompt must contain exactly one '{{}}', got {label_prompt!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.architecture = architecture
        self.pretrained = pretrained
        self.label_names: tuple[str, ...] | None = tuple(labels) if labels is not None else None
        self.label_prompt = label_prompt
        # None or "auto": the process's setting (engine.accel: the GPU when torch sees
        # one), read when the weights load; "cpu", "cuda" or "cuda:N" as given.
        if device is not None and (not isinstance(device, str) or not device.strip()):
            raise InputError(f"open_clip: device must be a torch device name, got {device!r}")
        self.device_option = device
        self.device = "cpu" if device in (None, "auto") else device
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._info: EncoderInfo | None = None
        self._loaded: _Loaded | None = None

    # -- identity (no weights needed) -------------------------------------------

    def _model_config(self, open_clip: Any) -> dict:
        config = open_clip.get_model_config(self.architecture)
        if config is None:
            raise UnknownNameError("open_clip architecture", self.architecture, open_clip.list_models())
        return config

    @property
    def info(self) -> EncoderInfo:  # type: ignore[override]
        """Name, kind, ``embed_dim`` and version; hashes the checkpoint on first access."""
        if self._info is None:
            with self._lock:
                if self._info is None:
                    self._info = self._make_info()
        return self._info

    def _make_info(self) -> EncoderInfo:
        open_clip = _import_open_clip()
        config = self._model_config(open_clip)
        if self.checkpoint is not None:
            version = f"{self.architecture}:sha256={sha256_file(self.checkpoint)[:16]}"
        else:
            self._check_tag(open_clip)
            version = f"{self.architecture}:{self.pretrained}"
        return EncoderInfo("open_clip", "image", int(config["embed_dim"]), version)

    def _check_tag(self, open_clip: Any) -> None:
        tags = open_clip.list_pretrained_tags_by_model(self.architecture)
        if self.pretrained not in tags:
            raise UnknownNameError(
                f"open_clip pretrained tag for {self.architecture}", str(self.pretrained), tags
            )

    # -- loading ----------------------------------------------------------------

    def _get(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            info = self.info  # validates the architecture and tag first
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load(info)
                loaded = self._loaded
        return loaded

    def _load(self, info: EncoderInfo) -> _Loaded:
        open_clip = _import_open_clip()
        import torch

        if self.device_option in (None, "auto"):
            self.device = accel.torch_device(self.device_option)
        if self.checkpoint is not None:
            model, preprocess = self._load_checkpoint(open_clip, self.checkpoint)
        else:
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.architecture, pretrained=self.pretrained, device=self.device
                )
            except (RuntimeError, OSError) as e:
                raise NotFoundError(
                    f"cannot fetch open_clip weights {self.architecture}/{self.pretrained}: {e}",
                    hint="without internet, download the checkpoint elsewhere and pass "
                    "checkpoint=/path/to/file instead of pretrained",
                ) from e
        model.eval()
        try:
            tokenizer = open_clip.get_tokenizer(self.architecture)
        except OSError as e:
            raise NotFoundError(
                f"cannot load the tokenizer of open_clip architecture {self.architecture!r}: {e}",
                hint="its tokenizer is fetched from the Hugging Face hub; run once with internet",
            ) from e
        logit_scale = float(model.logit_scale.detach().exp().reshape(-1)[0])
        loaded = _Loaded(model, preprocess, tokenizer, None, logit_scale)
        if self.label_names is not None:
            prompts = [self.label_prompt.format(name) for name in self.label_names]
            with torch.inference_mode():
                loaded.label_embeddings = self._text_features(loaded, prompts)
        return loaded

    def _load_checkpoint(self, open_clip: Any, path: Path) -> tuple[Any, Any]:
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.architecture, pretrained=str(path), device=self.device
            )
            return model, preprocess
        except Exception as load_error:  # diagnosed below and re-raised, never dropped
            # Tell "not a checkpoint" from "a checkpoint of another architecture":
            # the fix the user needs differs.
            from open_clip.factory import load_state_dict

            try:
                load_state_dict(str(path))
            except Exception as read_error:
                raise InputError(
                    f"cannot read open_clip checkpoint {path}: {type(read_error).__name__}: {read_error}",
                    hint="pass a file written by torch.save(model.state_dict()) or a .safetensors file",
                ) from load_error
            summary = str(load_error).strip().replace("\n", " ")
            raise InputError(
                f"open_clip checkpoint {path} does not fit architecture {self.architecture!r}: "
                f"{summary[:400]}",
                hint="pass the architecture the checkpoint was trained with",
            ) from load_error

    # -- encoding ---------------------------------------------------------------

    def _text_features(self, loaded: _Loaded, texts: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.batch_size):
            tokens = loaded.tokenizer(texts[start : start + self.batch_size]).to(self.device)
            parts.append(loaded.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return l2_normalise(np.concatenate(parts))

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, embed_dim) float32, L2-normalised image embeddings."""
        frames = [check_rgb_image(f, i) for i, f in enumerate(images)]
        if not frames:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        import torch
        from PIL import Image

        loaded = self._get()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = torch.stack(
                    [loaded.preprocess(Image.fromarray(f)) for f in frames[start : start + self.batch_size]]
                ).to(self.device)
                parts.append(loaded.model.encode_image(batch, normalize=True).float().cpu().numpy())
        return l2_normalise(np.concatenate(parts))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """(n, embed_dim) float32, L2-normalised text embeddings (the model's tokenizer)."""
        items = as_text_list(texts, "open_clip.encode_text")
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        import torch

        loaded = self._get()
        with torch.inference_mode():
            return self._text_features(loaded, items)

    def labels(self, images: Sequence[np.ndarray], top: int = 5) -> list[list[tuple[str, float]]]:
        """Zero-shot labels from the ``labels`` option, most likely first; ``[]`` per
        image without that option."""
        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise InputError(f"top must be a non-negative integer, got {top!r}")
        if self.label_names is None:
            return [[] for _ in [check_rgb_image(f, i) for i, f in enumerate(images)]]
        embeddings = self.encode_images(images)
        loaded = self._get()
        # _load computes label embeddings whenever label_names is set.
        label_embeddings = np.asarray(loaded.label_embeddings, dtype=np.float64)
        logits = loaded.logit_scale * embeddings.astype(np.float64) @ label_embeddings.T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        return [
            [(self.label_names[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)
        ]

