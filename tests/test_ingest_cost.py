"""What an ingest worker pays beyond the analysis itself: imports, preprocessing, order.

Each test pins one measured saving (docs/benchmarks.md, issue 16's ingest speed) so that
it cannot come back unnoticed: no torch import in a worker whose stages do not use it,
no sentence-transformers import to load the exported ONNX text encoder, float32 OCR
preprocessing equal to the float64 one, longest files dispatched first.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.ingest import Decision
from indexer.pipeline import Todo, dispatch_order

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_worker_thread_setup_does_not_import_torch():
    res = _run(
        "import json, sys\n"
        "from indexer.mapper import set_threads\n"
        "from indexer.stages import build_stages\n"
        "from indexer.options import IndexOptions\n"
        "set_threads(1, build_stages(IndexOptions()))\n"
        "import os\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'omp': os.environ.get('OMP_NUM_THREADS')}))\n"
    )
    assert res == {"torch": False, "omp": "1"}


def test_worker_thread_setup_bounds_torch_when_loaded():
    pytest.importorskip("torch")
    res = _run(
        "import json, torch\n"
        "from indexer.mapper import set_threads\n"
        "set_threads(1, [])\n"
        "print(json.dumps({'threads': torch.get_num_threads()}))\n"
    )
    assert res == {"threads": 1}


def test_worker_thread_setup_bounds_the_image_encoders_sessions():
    """Two workers whose ImageNet sessions ran 2 intra-op threads each on 2 cores spent
    1.7-1.9x the CPU on the same frames: a worker's share bounds them."""
    res = _run(
        "import json\n"
        "import numpy as np\n"
        "from indexer.mapper import set_threads\n"
        "from indexer.stages import build_stages\n"
        "from indexer.options import IndexOptions\n"
        "from engine.models.imagenet import ImageNetConSEEncoder\n"
        "set_threads(1, build_stages(IndexOptions()))\n"
        "enc = ImageNetConSEEncoder(num_threads=2)\n"
        "enc.encode_images([np.zeros((64, 64, 3), np.uint8)])\n"
        "opts = [s.get_session_options().intra_op_num_threads for s, _ in enc._get().sessions]\n"
        "print(json.dumps({'threads': opts}))\n"
    )
    assert res == {"threads": [1]}


def test_onnx_text_encoder_loads_without_sentence_transformers(minilm_onnx_exported):
    res = _run(
        "import json, sys\n"
        "from engine.models.text import MiniLMEncoder\n"
        "e = MiniLMEncoder(backend='onnx')\n"
        "v = e.encode(['a red car'])\n"
        "print(json.dumps({'shape': list(v.shape), 'mods': sorted(m for m in ('torch', 'transformers',"
        " 'sentence_transformers', 'onnx') if m in sys.modules)}))\n"
    )
    assert res == {"shape": [1, 384], "mods": []}


@pytest.fixture(scope="module")
def minilm_onnx_exported():
    """The one-time ONNX export, done here if this machine has not done it yet."""
    pytest.importorskip("onnxruntime")
    from engine.models.text import MiniLMEncoder

    MiniLMEncoder(backend="onnx").encode(["warm up"])


def test_ocr_float32_preprocessing_equals_rapidocr():
    pytest.importorskip("rapidocr_onnxruntime")
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    from indexer.ocr import _float32

    rgb = np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    ref = DetPreProcess(736, "min", [0.5] * 3, [0.5] * 3)(rgb)
    got = _float32(DetPreProcess(736, "min", [0.5] * 3, [0.5] * 3))(rgb)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_ocr_engine_uses_float32_preprocessing():
    pytest.importorskip("rapidocr_onnxruntime")
    from indexer import ocr

    pre = ocr._engine().text_det.get_preprocess(500)
    assert pre.mean.dtype == np.float32 and pre.std.dtype == np.float32


def _todo(name: str, seconds: float, size: int) -> Todo:
    return Todo(Decision(name, "new", name), None, size, seconds)


def test_dispatch_order_longest_first_then_largest():
    todo = [_todo("a", 5, 10), _todo("b", 60, 1), _todo("c", 0, 999), _todo("d", 60, 5), _todo("e", 12, 1)]
    assert [t.decision.source for t in dispatch_order(todo)] == ["d", "b", "e", "a", "c"]
    assert [t.decision.source for t in todo] == ["a", "b", "c", "d", "e"]  # the plan is not reordered
