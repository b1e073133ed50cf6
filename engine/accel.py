"""Where the models of ingest run: the CPU or a CUDA GPU.

One setting, ``device``, for every model runtime ingest uses:

- **CTranslate2** (faster-whisper, speech): ``device="cuda"`` and ``compute_type
  "float16"`` on a GPU; ``"cpu"`` / ``"int8"`` otherwise. PyPI's ``ctranslate2`` wheels
  for Linux x86-64 carry CUDA 12 support; they also need cuBLAS 12 and cuDNN 9
  (``pip install nvidia-cublas-cu12 nvidia-cudnn-cu12``, docs/gpu.md).
- **ONNX Runtime** (OCR, ImageNet visual encoders, COCO objects, faces, emotion, pose,
  MTCNN): the ``CUDAExecutionProvider`` first and the CPU one behind it, on a build that
  has it (``onnxruntime-gpu`` in place of ``onnxruntime``).
- **torch** (only a user's own open_clip weights): ``"cuda"`` when torch sees a GPU.

Values of ``device``:

- ``"cpu"``: the CPU, whatever the machine has.
- ``"auto"`` (default): a runtime uses the GPU when it can, else the CPU. On a machine
  with no GPU that is silent (the usual case); where a GPU is present but one runtime
  cannot use it (the CPU build of ONNX Runtime, a missing CUDA library) the runtime
  falls back to the CPU with one warning naming it and the fix.
- ``"cuda"``: every runtime on the GPU or a :class:`DeviceError` naming the runtime
  that cannot, and what to install. Nothing falls back quietly.

The setting is per process (``set_device``, or the ``VIDSEEK_DEVICE`` environment
variable), like the thread counts the workers set: an ingest worker takes
``IndexOptions.device`` before loading a model, and the loaders ask :func:`onnx_providers`,
:func:`ctranslate2_device` or :func:`torch_device`. Models are cached per device, so a
change of setting loads them again on next use.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import warnings
from typing import Any

from engine.errors import InputError, VidseekError

__all__ = [
    "DEVICES",
    "DeviceError",
    "check_device",
    "set_device",
    "current_device",
    "cuda_device_count",
    "onnx_cuda_available",
    "onnx_providers",
    "checked_session",
    "verify_session",
    "ctranslate2_failed",
    "ctranslate2_device",
    "torch_device",
    "fell_back",
    "plan",
    "ENV",
]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
ENV = "VIDSEEK_DEVICE"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"

_HINT_ORT = ("install the GPU build of ONNX Runtime in its place (pip uninstall -y onnxruntime && pip install"
             " onnxruntime-gpu, same version; docs/gpu.md), or run with --device cpu")
_HINT_CT2 = ("CTranslate2 needs an NVIDIA driver, cuBLAS 12 and cuDNN 9 (pip install nvidia-cublas-cu12"
             " nvidia-cudnn-cu12; docs/gpu.md), or run with --device cpu")


class DeviceError(VidseekError):
    """``device="cuda"`` was asked for and a model runtime cannot run there."""

    code = "device_unavailable"


def check_device(device: Any) -> str:
    """``device`` as one of :data:`DEVICES` (case and spaces ignored), or an InputError."""
    if isinstance(device, str):
        d = device.strip().lower()
        if d in DEVICES:
            return d
    raise InputError(f"unknown device {device!r}", hint=f"choose one of {', '.join(DEVICES)}")


_device: str | None = None  # None: VIDSEEK_DEVICE, else "auto"
_lock = threading.Lock()
_warned: set[str] = set()
_fell_back: dict[str, str] = {}  # runtime -> why it runs on the CPU under "auto"


def set_device(device: str | None) -> None:
    """The device of models this process loads from now on (None: ``$VIDSEEK_DEVICE``,
    else ``auto``)."""
    global _device
    _device = None if device is None else check_device(device)


def current_device() -> str:
    """This process's device setting: :func:`set_device`'s, else ``$VIDSEEK_DEVICE``, else auto."""
    if _device is not None:
        return _device
    env = os.environ.get(ENV, "").strip()
    if not env:
        return "auto"
    try:
        return check_device(env)
    except InputError as e:
        raise InputError(f"{ENV}={env!r} is not a device", hint=e.hint) from None


def _resolve(device: str | None) -> str:
    return current_device() if device is None else check_device(device)


def cuda_device_count() -> int:
    """NVIDIA GPUs this process can use, as CTranslate2's CUDA runtime counts them (0
    without a driver or without a CUDA-enabled CTranslate2). Counted once a process: no
    model loads."""
    return _count_cuda_devices()


@functools.cache
def _count_cuda_devices() -> int:
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken driver install counts as none
        return 0


def onnx_cuda_available() -> bool:
    """Whether ONNX Runtime here has the CUDA provider *and* a GPU exists to run it on.
    (The GPU build lists the provider even on a machine without a GPU.)"""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return CUDA_EP in ort.get_available_providers() and cuda_device_count() > 0


def _fallback(runtime: str, why: str, hint: str) -> None:
    """Record (and warn once per runtime) that ``runtime`` runs on the CPU under auto
    although a GPU is present."""
    with _lock:
        _fell_back[runtime] = why
        if runtime in _warned:
            return
        _warned.add(runtime)
    msg = f"{runtime} runs on the CPU: {why} ({hint})"
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def fell_back() -> dict[str, str]:
    """``{runtime: why}`` for each runtime of this process that fell back to the CPU
    under ``auto`` although a GPU was present."""
    with _lock:
        return dict(_fell_back)


def onnx_providers(what: str, device: str | None = None) -> list[str]:
    """The execution providers for an ONNX Runtime session of ``what`` (a model's name,
    for messages) under ``device`` (None: this process's setting)."""
    d = _resolve(device)
    if d == "cpu":
        return [CPU_EP]
    if onnx_cuda_available():
        return [CUDA_EP, CPU_EP]
    if d == "cuda":
        if cuda_device_count() == 0:
            raise DeviceError(f"{what}: device 'cuda' asked for, and no CUDA GPU is visible to this process",
                              hint="check nvidia-smi and CUDA_VISIBLE_DEVICES, or run with --device cpu")
        raise DeviceError(f"{what}: device 'cuda' asked for, and this ONNX Runtime has no CUDA provider",
                          hint=_HINT_ORT)
    if cuda_device_count() > 0:  # auto, a GPU, and a CPU-only ONNX Runtime
        _fallback("ONNX Runtime", "this build has no CUDA provider", _HINT_ORT)
    return [CPU_EP]


def checked_session(path: str, options: Any, what: str, device: str | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``path`` on ``device``'s providers. ONNX
    Runtime falls back to the CPU by itself when the CUDA provider fails to start (a
    missing cuDNN, say); that is an error under ``cuda`` and a warning under ``auto``."""
    import onnxruntime as ort

    d = _resolve(device)
    providers = onnx_providers(what, d)
    session = ort.InferenceSession(str(path), options, providers=providers)
    verify_session(session, providers, what, d)
    return session


def verify_session(session: Any, providers: list[str], what: str, device: str | None = None) -> None:
    """Check that a session made with ``providers`` runs on the first of them: ONNX
    Runtime (and RapidOCR) fall back to the CPU by themselves when the CUDA provider
    fails to start. An error under ``cuda``, a warning under ``auto``."""
    if providers[0] == CUDA_EP and session.get_providers()[0] != CUDA_EP:
        why = "the CUDA provider did not start (ONNX Runtime's log says why; often a missing cuDNN 9)"
        if _resolve(device) == "cuda":
            raise DeviceError(f"{what}: {why}", hint=_HINT_ORT)
        _fallback("ONNX Runtime", why, _HINT_ORT)


def ctranslate2_device(device: str | None = None) -> str:
    """``"cuda"`` or ``"cpu"`` for a CTranslate2 model (faster-whisper) under ``device``.
    Under ``auto``, once a GPU load has failed in this process (``ctranslate2_failed``)
    the answer is the CPU: the load is not tried again for every video."""
    d = _resolve(device)
    if d == "cpu":
        return "cpu"
    if cuda_device_count() > 0 and not (d == "auto" and "CTranslate2" in fell_back()):
        return "cuda"
    if d == "cuda":
        raise DeviceError("speech (CTranslate2): device 'cuda' asked for, and CTranslate2 sees no CUDA GPU",
                          hint=_HINT_CT2)
    return "cpu"


def ctranslate2_failed(device: str | None, error: BaseException) -> None:
    """A CTranslate2 model failed to load on the GPU: raise under ``cuda``, warn under auto."""
    why = f"loading on the GPU failed ({type(error).__name__}: {error})"
    if _resolve(device) == "cuda":
        raise DeviceError(f"speech (CTranslate2): {why}", hint=_HINT_CT2) from error
    _fallback("CTranslate2", why, _HINT_CT2)


def torch_device(device: str | None = None) -> str:
    """``"cuda"`` or ``"cpu"`` for a torch model under ``device``; torch is imported only
    when the setting is not ``cpu``."""
    d = _resolve(device)
    if d == "cpu":
        return "cpu"
    try:
        import torch

        ok = bool(torch.cuda.is_available())
    except ImportError:
        ok = False
    if ok:
        return "cuda"
    if d == "cuda":
        raise DeviceError("torch: device 'cuda' asked for, and torch sees no CUDA GPU",
                          hint="install a CUDA build of torch, or run with --device cpu")
    return "cpu"


def plan(device: str | None = None, *, speech: bool = True) -> dict[str, str]:
    """Where each runtime would run under ``device``, without loading a model:
    ``{"setting": ..., "speech": "cuda"|"cpu", "onnx": ...}`` (no ``speech`` entry when
    ``speech`` is False: an ingest without transcription). Raises DeviceError under
    ``cuda`` when one cannot (so ``vidseek index --device cuda`` fails before any work)."""
    d = _resolve(device)
    out = {"setting": d}
    if speech:
        out["speech"] = ctranslate2_device(d)
    out["onnx"] = "cuda" if onnx_providers("ONNX models", d)[0] == CUDA_EP else "cpu"
    return out
