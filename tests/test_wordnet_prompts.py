"""WordNet hypernyms in the ConSE class prompts (engine.models.imagenet, option
``hypernyms``): the committed table, which ancestors are taken, what they do to the class
embeddings, and the script that writes the table from WordNet's noun data."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError, VidseekError
from engine.models import imagenet
from engine.models.imagenet import ImageNetConSEEncoder, class_hypernyms, load_imagenet_classes

CHIHUAHUA, TABBY, AMBULANCE = "n02085620", "n02123045", "n02701002"


def test_the_table_covers_every_class_and_takes_ancestors_below_the_abstract_top():
    classes = load_imagenet_classes()
    three = class_hypernyms(classes.synsets, 3)
    assert len(three) == 1000 and sum(1 for a in three if a) > 990
    by = dict(zip(classes.synsets, three))
    assert by[CHIHUAHUA] == ("toy dog", "dog", "canine")
    assert by[TABBY] == ("domestic cat", "cat", "feline")
    assert by[AMBULANCE] == ("car", "motor vehicle", "self-propelled vehicle")
    # WordNet's top four levels under the root say nothing a query would ask for
    abstract = {"entity", "physical entity", "object", "whole", "artifact", "living thing", "abstraction"}
    assert not abstract & {a for chain in class_hypernyms(classes.synsets, 10) for a in chain}
    assert class_hypernyms([CHIHUAHUA], 1) == [("toy dog",)]


def test_a_missing_or_short_table_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "HYPERNYMS_FILE", tmp_path / "none.txt")
    with pytest.raises(VidseekError, match="hypernym table"):
        class_hypernyms([CHIHUAHUA], 3)
    short = tmp_path / "short.txt"
    short.write_text(f"{TABBY}\tdomestic cat|cat\n")
    monkeypatch.setattr(imagenet, "HYPERNYMS_FILE", short)
    with pytest.raises(VidseekError, match="no hypernyms for 1 classes"):
        class_hypernyms([CHIHUAHUA, TABBY], 3)


def test_bad_option_values_are_refused():
    for bad in (-1, 11, 2.0, True, "3"):
        with pytest.raises(InputError, match="hypernyms"):
            ImageNetConSEEncoder(hypernyms=bad)


class _Words:
    """A text encoder stand-in: each new phrase its own axis (every two phrases orthogonal)."""

    def __init__(self):
        from engine.models.base import EncoderInfo

        self.seen: dict[str, int] = {}
        self.info = EncoderInfo("words", "text", 64, "words-1")

    def encode(self, texts, is_query=False):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.seen.setdefault(t, len(self.seen))] = 1.0
        return out


def test_breeds_of_one_kind_come_together_and_towards_their_kind(monkeypatch):
    words = _Words()
    monkeypatch.setattr(ImageNetConSEEncoder, "_text_encoder", staticmethod(lambda: words))

    class Three:
        synsets = (CHIHUAHUA, "n02085782", AMBULANCE)  # Chihuahua, Japanese spaniel, ambulance
        lemmas = ("Chihuahua", "Japanese spaniel", "ambulance")

    enc = ImageNetConSEEncoder(hypernyms=3, disk_cache=False)
    plain = words.encode([f"a photo of a {x}" for x in Three.lemmas])
    blended = enc._with_hypernyms(plain, Three)
    assert np.allclose(np.linalg.norm(blended, axis=1), 1.0, atol=1e-5)
    dog = words.encode(["a photo of a dog"])[0]
    assert plain[0] @ dog == 0 and blended[0] @ dog > 0.1  # a Chihuahua is now partly "a dog"
    assert plain[0] @ plain[1] == 0 and blended[0] @ blended[1] > 0.05  # two toy dogs share their kinds
    assert abs(blended[0] @ blended[2]) < 1e-6  # and nothing with the ambulance
    assert blended[0] @ plain[0] > 0.9  # the class itself still leads its prompt
    # the blend is part of the encoder's identity (an index's vectors must agree)
    assert enc.info.version.endswith(f"-wordnet3x{imagenet.HYPERNYM_SHARE}")
    assert not ImageNetConSEEncoder(disk_cache=False).info.version.endswith(f"x{imagenet.HYPERNYM_SHARE}")


def test_the_script_writes_the_table_from_wordnet_noun_data(tmp_path, monkeypatch):
    import scripts.imagenet_hypernyms as script
    from scripts.imagenet_hypernyms import main

    # data.noun lines: offset lex_filenum ss_type w_cnt word lex_id ... p_cnt [sym offset pos src/tgt]... | gloss
    levels = ["entity", "physical_entity", "object", "whole", "living_thing", "organism", "animal", "dog",
              "toy_dog", "Chihuahua"]
    offsets = [f"{i + 1:08d}" for i in range(len(levels))]
    lines = ["  1 This software and database is being provided to you, the LICENSEE"]
    for i, (word, off) in enumerate(zip(levels, offsets)):
        ptrs = f"001 @ {offsets[i - 1]} n 0000" if i else "000"
        lines.append(f"{off} 03 n 01 {word} 0 {ptrs} | gloss of {word}")
    noun = tmp_path / "data.noun"
    noun.write_text("\n".join(lines) + "\n")
    synsets = tmp_path / "synsets.txt"
    synsets.write_text(f"n{offsets[-1]}\n")
    out = tmp_path / "table.txt"
    assert main(["--wordnet", str(noun), "--synsets", str(synsets), "--out", str(out)]) == 2  # not 1000 classes
    assert not out.exists()
    monkeypatch.setattr(script, "EXPECTED", 1)
    assert main(["--wordnet", str(noun), "--synsets", str(synsets), "--out", str(out)]) == 0
    line = out.read_text().strip()
    assert line == f"n{offsets[-1]}\ttoy dog|dog|animal|organism|living thing|whole|object|physical entity|entity"
    assert main(["--wordnet", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


def test_the_committed_table_is_what_the_script_writes_from_wordnet(tmp_path):
    """Where Debian's wordnet-base is installed, the script reproduces the committed file."""
    from pathlib import Path

    from scripts.imagenet_hypernyms import main

    noun = Path("/usr/share/wordnet/data.noun")
    if not noun.is_file():
        pytest.skip("no WordNet noun data here (apt-get install wordnet-base)")
    out = tmp_path / "t.txt"
    assert main(["--wordnet", str(noun), "--out", str(out)]) == 0
    assert out.read_text() == imagenet.HYPERNYMS_FILE.read_text()
