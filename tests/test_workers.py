"""Ingest workers (issue 22): what each worker process imports and loads.

The default stages run on ONNX Runtime and CTranslate2; torch and sentence-transformers
(about 700 MB and 5 s per process) are imported only where they are used. Each check
runs in a fresh interpreter, since this test process may have imported them already.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_set_threads_leaves_torch_unimported_and_still_bounds_a_torch_imported_later():
    out = _run("""
        import sys
        from indexer.mapper import set_threads
        from indexer.options import IndexOptions
        from indexer.stages import build_stages

        set_threads(1, build_stages(IndexOptions()))
        print("torch" in sys.modules)
        import torch  # reads OMP_NUM_THREADS, which set_threads set
        print(torch.get_num_threads())
        set_threads(2, [])  # a torch already imported is told directly
        print(torch.get_num_threads())
    """)
    assert out.split() == ["False", "1", "2"]


def test_minilm_on_onnx_runtime_imports_no_torch_once_exported():
    pytest.importorskip("onnx")
    code = """
        import sys
        from engine.models.text import MiniLMEncoder

        enc = MiniLMEncoder(backend="onnx")
        v = enc.encode(["a dog runs on the beach"])
        print(v.shape[1], "torch" in sys.modules, "sentence_transformers" in sys.modules)
    """
    _run(code)  # exports into the model cache if it is not there yet (that one imports them)
    assert _run(code).split() == ["384", "False", "False"]
