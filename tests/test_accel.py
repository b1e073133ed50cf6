"""Where ingest's models run (engine.accel): the device setting, the CUDA paths of each
runtime and their fallbacks. CI has no GPU, so "a GPU is present" is simulated by
telling accel that one is counted (and, for ONNX Runtime, that its CUDA provider is
there); the runtimes then really try the GPU and really fall back, as they would on a
machine whose GPU they cannot use."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from engine import accel
from engine.accel import DeviceError
from engine.errors import InputError


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """A clean per-process setting and warning record for each test."""
    monkeypatch.delenv(accel.ENV, raising=False)
    monkeypatch.setattr(accel, "_device", None)
    monkeypatch.setattr(accel, "_warned", set())
    monkeypatch.setattr(accel, "_fell_back", {})


def gpu_present(monkeypatch, *, onnx_provider: bool) -> None:
    """Pretend a GPU is counted; ``onnx_provider``: and ONNX Runtime lists CUDA."""
    monkeypatch.setattr(accel, "cuda_device_count", lambda: 1)
    if onnx_provider:
        import onnxruntime as ort

        real = ort.get_available_providers
        monkeypatch.setattr(ort, "get_available_providers", lambda: [accel.CUDA_EP, *real()])


def _identity_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


# -- the setting -------------------------------------------------------------------------

def test_device_names_are_checked():
    assert accel.check_device(" CUDA ") == "cuda"
    for bad in ("gpu", "", None, 1):
        with pytest.raises(InputError, match="unknown device"):
            accel.check_device(bad)


def test_setting_comes_from_the_call_then_the_environment(monkeypatch):
    assert accel.current_device() == "auto"
    monkeypatch.setenv(accel.ENV, "cpu")
    assert accel.current_device() == "cpu"
    accel.set_device("cuda")
    assert accel.current_device() == "cuda"
    accel.set_device(None)
    monkeypatch.setenv(accel.ENV, "tpu")
    with pytest.raises(InputError, match="VIDSEEK_DEVICE='tpu'"):
        accel.current_device()


def test_index_options_check_the_device():
    from indexer.options import IndexOptions

    assert IndexOptions(device=" CPU ").device == "cpu"
    assert IndexOptions().device is None
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        IndexOptions(device="gpu")


# -- ONNX Runtime ------------------------------------------------------------------------

def test_no_gpu_auto_is_the_cpu_and_silent_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(accel, "cuda_device_count", lambda: 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert accel.onnx_providers("m") == [accel.CPU_EP]
        assert accel.ctranslate2_device() == "cpu"
    assert accel.fell_back() == {}
    with pytest.raises(DeviceError, match="no CUDA GPU is visible") as e:
        accel.onnx_providers("OCR", "cuda")
    assert "--device cpu" in e.value.hint
    with pytest.raises(DeviceError, match="CTranslate2 sees no CUDA GPU"):
        accel.ctranslate2_device("cuda")
    assert accel.plan("cpu") == {"setting": "cpu", "speech": "cpu", "onnx": "cpu"}
    assert accel.plan("cpu", speech=False) == {"setting": "cpu", "onnx": "cpu"}


def test_gpu_but_cpu_only_onnxruntime_warns_once_or_refuses(monkeypatch):
    gpu_present(monkeypatch, onnx_provider=False)
    with pytest.warns(RuntimeWarning, match="ONNX Runtime runs on the CPU.*onnxruntime-gpu"):
        assert accel.onnx_providers("OCR") == [accel.CPU_EP]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per runtime, not once per model
        assert accel.onnx_providers("faces") == [accel.CPU_EP]
    assert "no CUDA provider" in accel.fell_back()["ONNX Runtime"]
    with pytest.raises(DeviceError, match="has no CUDA provider") as e:
        accel.onnx_providers("OCR", "cuda")
    assert "onnxruntime-gpu" in e.value.hint
    assert accel.onnx_providers("OCR", "cpu") == [accel.CPU_EP]


def test_a_cuda_provider_goes_first_and_a_session_that_did_not_start_it_is_caught(monkeypatch, tmp_path):
    import onnxruntime as ort

    model = _identity_model(tmp_path / "id.onnx")
    gpu_present(monkeypatch, onnx_provider=True)
    assert accel.onnx_providers("m") == [accel.CUDA_EP, accel.CPU_EP]
    assert accel.plan() == {"setting": "auto", "speech": "cuda", "onnx": "cuda"}
    # This machine's ONNX Runtime cannot start the CUDA provider: the session runs on
    # the CPU. Under auto that is a warning and the session works ...
    with pytest.warns(RuntimeWarning, match="CUDA provider did not start"):
        session = accel.checked_session(model, ort.SessionOptions(), "identity")
    assert session.get_providers()[0] == accel.CPU_EP
    x = np.arange(3, dtype=np.float32)[None]
    assert np.array_equal(session.run(None, {"x": x})[0], x)
    # ... under cuda it is an error naming the model.
    with pytest.raises(DeviceError, match="identity: the CUDA provider did not start"):
        accel.checked_session(model, ort.SessionOptions(), "identity", "cuda")
    # And cpu never asks for the GPU at all.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert accel.checked_session(model, ort.SessionOptions(), "identity", "cpu").get_providers() == [accel.CPU_EP]


def test_visual_encoder_falls_back_with_the_same_vectors_and_reloads_per_setting(monkeypatch):
    from engine.models.imagenet import ImageNetConSEEncoder

    enc = ImageNetConSEEncoder()
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    accel.set_device("cpu")
    on_cpu = enc.encode_images([frame])
    first = enc._get()
    gpu_present(monkeypatch, onnx_provider=True)
    accel.set_device("auto")
    with pytest.warns(RuntimeWarning, match="CUDA provider did not start"):
        fallback = enc.encode_images([frame])
    assert enc._get() is not first  # a new setting loads the sessions again
    assert np.array_equal(on_cpu, fallback)
    accel.set_device("cuda")
    with pytest.raises(DeviceError, match=r"mobilenetv2\S* \(imagenet-minilm\)"):
        enc.encode_images([frame])


def test_ocr_asks_rapidocr_for_cuda_and_holds_it_to_the_setting(monkeypatch):
    from indexer import ocr

    gpu_present(monkeypatch, onnx_provider=True)
    with pytest.raises(DeviceError, match="OCR detection"):
        ocr._load_engine(1, "cuda")
    with pytest.raises(DeviceError, match="OCR gate"):
        ocr._load_gate_detector(1, "cuda")
    with pytest.warns(RuntimeWarning, match="CUDA provider did not start"):
        engine = ocr._load_engine(1, "auto")
    # RapidOCR was asked for the GPU (its own check found none and chose the CPU).
    assert engine.text_det.infer.cfg_use_cuda and engine.text_rec.session.cfg_use_cuda
    assert engine.text_det.infer.session.get_providers() == [accel.CPU_EP]
    assert not ocr._load_engine(1, "cpu").text_det.infer.cfg_use_cuda


def test_face_and_object_models_follow_the_setting(monkeypatch):
    from indexer import human_models

    if not human_models.available():
        pytest.skip("human-models ONNX files not converted (scripts/human-models-onnx.sh)")
    accel.set_device("cpu")
    cpu = human_models.load_sessions()
    gpu_present(monkeypatch, onnx_provider=True)
    accel.set_device("cuda")
    with pytest.raises(DeviceError, match=r"\(human-models\)"):
        human_models.load_sessions()
    accel.set_device("cpu")
    assert human_models.load_sessions() is cpu  # cached per setting


# -- CTranslate2 (speech) ----------------------------------------------------------------

def test_whisper_tries_the_gpu_then_falls_back_or_refuses(monkeypatch, tmp_path):
    from indexer import speech

    cache = tmp_path / "cache"
    gpu_present(monkeypatch, onnx_provider=False)
    accel.set_device("cpu")
    on_cpu = speech.load_model("whisper-base", cache_dir=cache, cpu_threads=1)
    # A GPU is counted, so auto loads on "cuda"; CTranslate2 finds no driver here and
    # the CPU model (the very same one: int8, same threads) is used, with a warning.
    accel.set_device("auto")
    with pytest.warns(RuntimeWarning, match="CTranslate2 runs on the CPU: loading on the GPU failed"):
        assert speech.load_model("whisper-base", cache_dir=cache, cpu_threads=1) is on_cpu
    assert "CTranslate2" in accel.fell_back()
    tried = []
    real = speech._load_cached
    monkeypatch.setattr(speech, "_load_cached", lambda *a: tried.append(a[-1]) or real(*a))
    assert speech.load_model("whisper-base", cache_dir=cache, cpu_threads=1) is on_cpu
    assert tried == ["cpu"]  # the failed GPU load is not tried again for every video
    with pytest.raises(DeviceError, match="speech") as e:
        speech.load_model("whisper-base", cache_dir=cache, cpu_threads=1, device="cuda")
    assert "cudnn" in e.value.hint.lower()


# -- ingest ------------------------------------------------------------------------------

def test_index_reports_the_devices_and_refuses_cuda_before_any_work(monkeypatch, tmp_path):
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths
    from tests import synth

    if synth.require_tools():
        pytest.skip(synth.require_tools())
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    fast = dict(speech=False, ocr=False, objects=False, faces=False, graph=False)
    monkeypatch.setattr(accel, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        index_paths([str(clip)], tmp_path / "idx-cuda", options=IndexOptions(device="cuda", **fast))
    assert not (tmp_path / "idx-cuda").exists()  # refused before the index was made
    report = index_paths([str(clip)], tmp_path / "idx", options=IndexOptions(device="cpu", **fast))
    summary = report.summary()
    assert summary["by_status"] == {"indexed": 1}
    assert summary["devices"] == {"setting": "cpu", "onnx": "cpu"}  # no speech asked for, none planned
    assert summary["warnings"] == []


def test_a_runtime_that_fell_back_is_a_warning_of_the_video(monkeypatch, tmp_path):
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths
    from tests import synth

    if synth.require_tools():
        pytest.skip(synth.require_tools())
    clip = synth.make_no_audio_clip(tmp_path, seconds=2.0)
    gpu_present(monkeypatch, onnx_provider=True)
    with pytest.warns(RuntimeWarning):
        report = index_paths([str(clip)], tmp_path / "idx", options=IndexOptions(
            device="auto", speech=False, ocr=False, objects=False, faces=False, graph=False, workers=1))
    summary = report.summary()
    assert summary["by_status"] == {"indexed": 1}
    assert summary["devices"]["onnx"] == "cuda"  # what auto meant to do ...
    # ... and what happened: the visual encoder's session ran on the CPU.
    assert any("ONNX Runtime ran on the CPU" in w["warning"] for w in summary["warnings"])


def test_cli_device_flag(tmp_path, capsys, monkeypatch):
    from api.cli import main

    with pytest.raises(SystemExit):
        main(["index", str(tmp_path), "--index", str(tmp_path / "i"), "--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    monkeypatch.setattr(accel, "cuda_device_count", lambda: 0)
    rc = main(["index", str(tmp_path), "--index", str(tmp_path / "i"), "--device", "cuda", "--no-server", "--quiet"])
    assert rc != 0
    assert "device 'cuda' asked for" in capsys.readouterr().err


def test_ray_actors_take_no_gpu_under_cpu_and_cuda_needs_a_cluster_gpu(monkeypatch):
    pytest.importorskip("ray")
    import ray

    from indexer import distributed
    from indexer.options import IndexOptions

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 4.0})
    with pytest.raises(DeviceError, match="Ray cluster has no GPU"):
        distributed._cluster_devices(IndexOptions(device="cuda"))
    assert distributed._cluster_devices(IndexOptions(device="cpu")) == {"setting": "cpu", "cluster_gpus": "0"}
    gpus = {"CPU": 4.0, "GPU": 1.0}
    assert distributed._gpu_share(distributed.RayIngestSettings(num_gpus=0), gpus) == 0.0
    assert distributed._gpu_share(distributed.RayIngestSettings(), gpus) == 0.25
