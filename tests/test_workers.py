"""Ingest workers (issue 22): what each worker process imports and loads, and how the
pool reports a worker that dies.

The default stages run on ONNX Runtime and CTranslate2; torch and sentence-transformers
(about 700 MB and 5 s per process) are imported only where they are used. Those checks
run in a fresh interpreter, since this test process may have imported them already.
On Linux the workers are forks of a fork server that imported ``WORKER_PRELOAD``
(``indexer.pipeline._pool_context``); that they die with a killed indexer is
``tests/test_reliability.py``'s.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from indexer.stages.base import Stage
from tests import synth

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


def test_the_fork_server_preload_imports_and_pulls_in_no_torch():
    """Every name in WORKER_PRELOAD imports (a misspelt one would be skipped by the
    fork server without a word), and none of them imports torch."""
    out = _run("""
        import importlib, sys
        from indexer.pipeline import WORKER_PRELOAD

        for name in WORKER_PRELOAD:
            importlib.import_module(name)
        print("torch" in sys.modules, "sentence_transformers" in sys.modules)
    """)
    assert out.split() == ["False", "False"]


class CrashOn(Stage):
    """Ends its worker process abruptly (as a decoder crash would) on files whose name
    holds ``marker``."""

    name = "crash_on"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def run(self, work) -> None:
        import os

        if self.marker in Path(work.source).name:
            os._exit(3)


def test_a_worker_that_dies_is_reported_worker_crash_and_the_run_ends(tmp_path, tools):
    from indexer.pipeline import IndexOptions, index_paths
    from indexer.stages import build_stages

    d = tmp_path / "clips"
    d.mkdir()
    for i in range(3):
        synth.make_no_audio_clip(d, seconds=2.0 + i, name=f"c{i}.mp4")
    synth.make_no_audio_clip(d, seconds=6.0, name="crash.mp4")
    opts = IndexOptions(workers=2, speech=False, ocr=False)
    r = index_paths([str(d)], tmp_path / "idx", options=opts, stages=build_stages(opts, [CrashOn("crash")]))
    by_name = {Path(x.source).name: x for x in r.results}
    assert set(by_name) == {"c0.mp4", "c1.mp4", "c2.mp4", "crash.mp4"}
    assert by_name["crash.mp4"].status == "failed" and by_name["crash.mp4"].code == "worker_crash"
    # the pool is broken by the crash: files not finished by then fail the same way
    assert all(x.status == "indexed" or x.code == "worker_crash" for x in r.results)


@pytest.mark.slow
def test_forks_of_a_process_that_imported_the_preload_run_onnx_runtime():
    """The fork server forks from a process that imported ``WORKER_PRELOAD``, in which
    OpenBLAS (numpy, OpenCV) and ONNX Runtime have started threads of their own. A fork
    copies only the calling thread: a lock one of them held at that moment would stay
    held in the child. 200 forks, each creating and running an ONNX Runtime session,
    OpenBLAS and OpenCV as a worker does, must all finish (a hang ends by SIGALRM)."""
    out = _run("""
        import importlib, os, signal
        import numpy as np
        from indexer.pipeline import WORKER_PRELOAD

        for name in WORKER_PRELOAD:
            importlib.import_module(name)

        def child():
            signal.alarm(60)
            import cv2
            import onnxruntime as ort
            from indexer.covers.faces import mtcnn_model_dir

            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            s = ort.InferenceSession(str(mtcnn_model_dir() / "pnet.onnx"), so, providers=["CPUExecutionProvider"])
            shape = [d if isinstance(d, int) else 48 for d in s.get_inputs()[0].shape]
            s.run(None, {s.get_inputs()[0].name: np.random.rand(*shape).astype(np.float32)})
            a = np.random.rand(300, 300)
            a @ a
            cv2.resize(np.zeros((400, 400, 3), np.uint8), (100, 100))

        bad = 0
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    child()
                    code = 0
                finally:
                    os._exit(code)
            bad += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0
        print(bad)
    """)
    assert out.split()[-1] == "0"
