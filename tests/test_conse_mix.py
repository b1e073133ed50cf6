"""New indexes mix 50 ImageNet classes into each visual vector, with WordNet hypernyms in
the class prompts (engine.config.DEFAULT_IMAGE_OPTIONS); an index built with the 10 of
before (or the 50 without hypernyms) keeps them, and the scene stage reads each mix with
its own cut points."""
from __future__ import annotations

import json

import pytest

from engine.config import DEFAULT_IMAGE_OPTIONS, IndexConfig, load_config
from engine.models.registry import get_image_encoder
from indexer.scene import calibration_for

NEW = {"top_k": 50, "hypernyms": 3}


def test_a_new_config_gets_the_50_class_mix_and_a_stored_one_keeps_its_own(tmp_path):
    assert IndexConfig().image_options == NEW
    assert IndexConfig(image_encoder="imagenet-minilm").image_options == NEW
    # what every manifest written before records: kept as it is
    assert IndexConfig.from_dict({"image_encoder": "imagenet-effnet-minilm", "image_options": {}}).image_options == {}
    # a config file that names no options gets the encoder's defaults; one that does, its own
    toml = tmp_path / "a.toml"
    toml.write_text('[index]\nimage_encoder = "imagenet-minilm"\n')
    assert load_config(toml).image_options == NEW
    toml.write_text('[index]\nimage_encoder = "imagenet-minilm"\nimage_options = { top_k = 20 }\n')
    assert load_config(toml).image_options == {"top_k": 20}
    # encoders without defaults get none
    assert "open-clip" not in DEFAULT_IMAGE_OPTIONS and IndexConfig(image_encoder="x").image_options == {}


def test_the_mix_is_part_of_the_encoders_identity():
    new = get_image_encoder("imagenet-minilm", **IndexConfig(image_encoder="imagenet-minilm").image_options)
    old = get_image_encoder("imagenet-minilm")
    assert new.info.version.endswith("conse-top50-wordnet3x0.33") and old.info.version.endswith("conse-top10")
    plain = get_image_encoder("imagenet-minilm", top_k=50)  # what session 7-8 indexes recorded
    assert plain.info.version.endswith("conse-top50")


def test_scene_cut_points_follow_the_mix():
    ten, fifty = calibration_for("imagenet-effnet-minilm", {}), calibration_for("imagenet-effnet-minilm", {"top_k": 50})
    wordnet = calibration_for("imagenet-effnet-minilm", NEW)
    assert ten is not None and fifty is not None and wordnet is not None and len({ten, fifty, wordnet}) == 3
    assert calibration_for("imagenet-minilm", NEW) is not None
    assert calibration_for("imagenet-minilm", {"top_k": 50}) is not None
    assert calibration_for("imagenet-effnet-minilm", {"top_k": 20}) is None  # not measured: no scene labels


def test_an_index_of_the_10_class_mix_goes_on_with_it_and_a_new_one_uses_50(tmp_path):
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths
    from tests import synth

    if synth.require_tools():
        pytest.skip(synth.require_tools())
    a = synth.make_no_audio_clip(tmp_path, seconds=2.0, name="a.mp4")
    b, _cuts = synth.make_cuts_clip(tmp_path)
    fast = IndexOptions(speech=False, ocr=False, objects=False, faces=False, graph=False, workers=1)
    old_cfg = IndexConfig(image_encoder="imagenet-minilm", image_options={})  # as built before
    old = tmp_path / "old"
    index_paths([str(a)], old, config=old_cfg, options=fast)
    # reopened with no settings (what `vidseek index` does for an existing index): no mismatch
    report = index_paths([str(b)], old, options=fast)
    assert report.summary()["by_status"] == {"indexed": 1}
    man = json.loads((old / "manifest.json").read_text())
    assert man["config"]["image_options"] == {} and man["encoders"]["image"]["version"].endswith("conse-top10")
    new = tmp_path / "new"
    index_paths([str(a)], new, config=IndexConfig(image_encoder="imagenet-minilm"), options=fast)
    man = json.loads((new / "manifest.json").read_text())
    assert man["config"]["image_options"] == NEW
    assert man["encoders"]["image"]["version"].endswith("conse-top50-wordnet3x0.33")


def test_the_library_and_the_cli_give_a_named_encoder_its_defaults(tmp_path):
    from api.cli import _index_config, build_parser
    from vidseek import Index

    Index.create(tmp_path / "lib", image_encoder="imagenet-minilm").close()
    assert json.loads((tmp_path / "lib" / "manifest.json").read_text())["config"]["image_options"] == NEW
    Index.create(tmp_path / "lib10", image_encoder="imagenet-minilm", image_options={"top_k": 10}).close()
    assert json.loads((tmp_path / "lib10" / "manifest.json").read_text())["config"]["image_options"] == {"top_k": 10}
    args = build_parser().parse_args(["index", str(tmp_path), "--index", str(tmp_path / "x"),
                                      "--image-encoder", "imagenet-minilm"])
    assert _index_config(args).image_options == NEW
