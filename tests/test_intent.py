"""Intent classifier: labelled data, split, rules, weight blending, persistence, and the
held-out accuracy floor with the real encoders (skipped if the registry is missing)."""
from __future__ import annotations

import json
import math
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from engine.errors import (
    CorruptIndexError,
    IndexMismatchError,
    InputError,
    NotFoundError,
    UnknownNameError,
)
from query.intent import (
    DEFAULT_INTENT_WEIGHTS,
    INTENTS,
    MODALITIES,
    Intent,
    IntentClassifier,
    IntentExample,
    evaluate,
    load_examples,
    split_examples,
)
from query.parse import parse

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class HashingEncoder:
    """A deterministic bag-of-words encoder: enough for tests about the classifier's
    plumbing (rules, blending, persistence), which are not about embedding quality."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
            out[i, self.dim - 1] += 0.1  # no all-zero rows
        return out / np.linalg.norm(out, axis=1, keepdims=True)


TOY = [
    IntentExample(t, i)
    for i, texts in {
        "visual": ["dog running on grass", "cat on a sofa", "dog in the park", "bird on a tree"],
        "speech": ["he talks about taxes", "lecture on physics", "she explains taxes", "podcast"],
        "ocr": ["caption on the poster", "sign over the door", "poster text", "title on screen"],
        "entity": ["Barack Obama", "Taylor Swift", "Obama speech", "Swift concert"],
        "technical": ["4k aerial drone", "60fps slow motion", "aerial 4k", "drone 1080p"],
    }.items()
    for t in texts
]


@pytest.fixture(scope="module")
def toy() -> IntentClassifier:
    return IntentClassifier(HashingEncoder(), examples=TOY).fit()


# -- the labelled data -----------------------------------------------------------------


def test_examples_file_is_big_balanced_and_multilingual() -> None:
    examples = load_examples()
    counts = Counter(e.intent for e in examples)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 60, counts
    texts = [e.text for e in examples]
    assert len(set(texts)) == len(texts), "duplicate examples"
    chinese = sum(any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts)
    assert 0.08 <= chinese / len(texts) <= 0.2, chinese
    for e in examples:
        parse(e.text)  # every example is a valid query


def test_split_is_deterministic_per_intent() -> None:
    examples = load_examples()
    train, held = split_examples(examples)
    assert split_examples(examples) == (train, held)
    assert len(train) + len(held) == len(examples)
    assert not set(e.text for e in train) & set(e.text for e in held)
    per_intent = Counter(e.intent for e in examples)
    held_counts = Counter(e.intent for e in held)
    for intent in INTENTS:
        assert held_counts[intent] == per_intent[intent] // 5
    # The 5th, 10th, ... example of each intent, whatever the file order.
    visual = [e for e in examples if e.intent == "visual"]
    assert [e for e in held if e.intent == "visual"] == visual[4::5]


def test_split_rejects_every_below_two() -> None:
    with pytest.raises(InputError):
        split_examples(TOY, every=1)


def test_load_examples_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_examples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "intent": "visual"}\nnot json\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        load_examples(bad)
    bad.write_text('{"text": "a", "intent": "smell"}\n')
    with pytest.raises(UnknownNameError, match="smell"):
        load_examples(bad)
    bad.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        load_examples(bad)


# -- weights ---------------------------------------------------------------------------


def test_default_weights_are_rows_over_modalities_summing_to_one() -> None:
    assert set(DEFAULT_INTENT_WEIGHTS) == set(INTENTS)
    for intent, row in DEFAULT_INTENT_WEIGHTS.items():
        assert set(row) == set(MODALITIES), intent
        assert math.isclose(sum(row.values()), 1.0), intent
    # Each intent's own modality dominates where it has one.
    for intent in ("visual", "speech", "ocr"):
        row = DEFAULT_INTENT_WEIGHTS[intent]
        assert max(row, key=row.get) == intent
    entity = DEFAULT_INTENT_WEIGHTS["entity"]
    assert max(entity, key=entity.get) == "metadata"


def test_bad_weight_tables_are_rejected() -> None:
    rows = {i: dict(r) for i, r in DEFAULT_INTENT_WEIGHTS.items()}
    with pytest.raises(InputError, match="no row"):
        no_ocr = {k: v for k, v in rows.items() if k != "ocr"}
        IntentClassifier(HashingEncoder(), intent_weights=no_ocr)
    with pytest.raises(UnknownNameError, match="audio"):
        IntentClassifier(HashingEncoder(), intent_weights={**rows, "ocr": {"audio": 1.0}})
    with pytest.raises(InputError, match=">= 0"):
        IntentClassifier(HashingEncoder(), intent_weights={**rows, "ocr": {"ocr": -1.0}})


def test_weights_are_the_probability_weighted_mix(toy: IntentClassifier) -> None:
    intent = toy.classify("dog on a poster")
    assert isinstance(intent, Intent)
    assert math.isclose(sum(intent.scores.values()), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(intent.weights.values()), 1.0, rel_tol=1e-9)
    for m in MODALITIES:
        mix = sum(intent.scores[i] * DEFAULT_INTENT_WEIGHTS[i][m] for i in INTENTS)
        assert math.isclose(intent.weights[m], mix, rel_tol=1e-9)
    assert intent.label == max(intent.scores, key=intent.scores.get)
    assert intent.confidence == intent.scores[intent.label]


def test_training_examples_are_learned(toy: IntentClassifier) -> None:
    got = [i.label for i in toy.classify_many([e.text for e in TOY])]
    assert sum(g == e.intent for g, e in zip(got, TOY)) >= 0.9 * len(TOY)


# -- rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "rule"),
    [
        ('the line "winter is coming"', "quoted_phrase"),
        ("what the mayor said about the bridge", "speech_cue"),
        ("someone talking about their dog", "speech_cue"),
        ("老师讲到勾股定理", "speech_cue"),
        ("a caption about rain", "ocr_cue"),
        ("the sign at the station", "ocr_cue"),
        ("title card at the start", "ocr_cue"),
        ("english subtitles", "ocr_cue"),
        ("屏幕上的字幕", "ocr_cue"),
        ("harbour res>=4k", "technical_filter"),
        ("beach fps>=50", "technical_filter"),
        ("beach dur:10-30s", "technical_filter"),
        ('person:"Ada Lovelace" lecture', "person_filter"),
        ("interview has:speech", "has_speech_filter"),
        ("news has:text", "has_text_filter"),
        ("colour bars test pattern", "picture_style"),
        ("a black and white film of a street", "picture_style"),
        ("cartoon dog chasing a ball", "picture_style"),
    ],
)
def test_rules_fire(toy: IntentClassifier, query: str, rule: str) -> None:
    assert rule in toy.classify(query).rules_fired


@pytest.mark.parametrize(
    "query",
    ["a poster design studio", "a woman reading a book", "kids on a slide", "signals at a junction"],
)
def test_cue_words_need_word_boundaries(toy: IntentClassifier, query: str) -> None:
    fired = toy.classify(query).rules_fired
    assert "ocr_cue" not in fired and "speech_cue" not in fired


@pytest.mark.parametrize("query", ["subtitle over a test pattern", "screen recording of a terminal",
                                   "a black and white dog", "red bars on a chart"])
def test_picture_style_rule_needs_a_style_and_no_text_cue(toy: IntentClassifier, query: str) -> None:
    assert "picture_style" not in toy.classify(query).rules_fired


def test_rules_raise_their_intent(toy: IntentClassifier) -> None:
    plain = toy.classify("harbour at dusk")
    with_filter = toy.classify("harbour at dusk res>=4k")
    assert with_filter.scores["technical"] > plain.scores["technical"]
    quoted = toy.classify('harbour at "dusk"')
    assert quoted.scores["speech"] > plain.scores["speech"]
    assert quoted.scores["ocr"] > plain.scores["ocr"]


def test_filter_only_query_uses_rules_on_a_uniform_prior(toy: IntentClassifier) -> None:
    calls = toy.encoder.calls  # type: ignore[attr-defined]
    intent = toy.classify("res>=4k dur:10-30s")
    assert toy.encoder.calls == calls  # type: ignore[attr-defined]  # nothing to embed
    assert intent.label == "technical"
    e2 = math.exp(2.0)
    assert math.isclose(intent.confidence, e2 / (e2 + 4))
    empty = toy.classify("")
    assert empty.label == INTENTS[0] and math.isclose(empty.confidence, 0.2)


def test_intent_to_dict_is_json(toy: IntentClassifier) -> None:
    d = json.loads(json.dumps(toy.classify("dog 4k").to_dict()))
    assert set(d) == {"label", "confidence", "scores", "weights", "rules_fired"}
    assert set(d["weights"]) == set(MODALITIES)


def test_classify_accepts_a_parsed_query(toy: IntentClassifier) -> None:
    assert toy.classify(parse("cat on a sofa")) == toy.classify("cat on a sofa")
    parsed = parse("cat on a sofa res>=4k")
    assert toy.classify(parsed.search_text, parsed=parsed) == toy.classify(parsed)
    assert "technical_filter" in toy.classify(parsed.search_text, parsed=parsed).rules_fired


def test_default_is_shared_fitted_and_cached_on_disk(tmp_path: Path, monkeypatch) -> None:
    from query.intent import get_intent_classifier

    monkeypatch.setenv("VIDSEEK_CACHE", str(tmp_path))
    get_intent_classifier.cache_clear()
    try:
        a = IntentClassifier.default("minilm")
        assert a is IntentClassifier.default("minilm")
        assert a.is_fitted
        cached = list((tmp_path / "intent").glob("minilm-*.npz"))
        assert len(cached) == 1
        get_intent_classifier.cache_clear()
        b = IntentClassifier.default("minilm")  # a new process would load the file, not refit
        assert b is not a and b.is_fitted
        q = "a red car driving along a coastal road"
        assert b.classify(q).scores == a.classify(q).scores
    finally:
        get_intent_classifier.cache_clear()


# -- persistence -----------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path, toy: IntentClassifier) -> None:
    path = tmp_path / "intent.npz"
    toy.save(path)
    fresh = IntentClassifier(toy.encoder, examples=TOY).load(path)
    assert fresh.classify("dog with a caption") == toy.classify("dog with a caption")
    with pytest.raises(IndexMismatchError):
        IntentClassifier(toy.encoder, examples=TOY, l2=1.0).load(path)
    with pytest.raises(IndexMismatchError):
        IntentClassifier(toy.encoder, examples=TOY[:-1]).load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(CorruptIndexError):
        IntentClassifier(toy.encoder, examples=TOY).load(path)
    with pytest.raises(NotFoundError):
        IntentClassifier(toy.encoder, examples=TOY).load(tmp_path / "none.npz")


def test_fit_needs_every_intent() -> None:
    with pytest.raises(InputError, match="no example"):
        IntentClassifier(HashingEncoder(), examples=TOY[:4]).fit()


def test_encoder_returning_garbage_is_reported() -> None:
    class Broken:
        def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
            return np.full((len(texts), 4), np.nan, dtype=np.float32)

    with pytest.raises(InputError, match="encoder"):
        IntentClassifier(Broken(), examples=TOY).fit()


# -- real encoders: held-out accuracy floor ----------------------------------------------


def _real_encoder(name: str):  # noqa: ANN202 - TextEncoder
    try:
        from engine.models.registry import get_text_encoder
    except ImportError as e:  # the registry is written by another part of the project
        pytest.skip(f"engine.models.registry is not importable ({e})")
    return get_text_encoder(name)


class _Memo:
    """Caches rows per text so that one embedding pass serves several tests."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.rows: dict[tuple[str, bool], np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if (t, is_query) not in self.rows]
        if todo:
            for t, row in zip(todo, self.inner.encode(todo, is_query=is_query)):
                self.rows[(t, is_query)] = row
        return np.stack([self.rows[(t, is_query)] for t in texts])


@pytest.fixture(scope="module")
def e5() -> _Memo:
    return _Memo(_real_encoder("e5-multilingual"))


@pytest.fixture(scope="module")
def e5_clf(e5: _Memo) -> IntentClassifier:
    return IntentClassifier(e5, examples=split_examples(load_examples())[0]).fit()


def test_heldout_accuracy_e5_multilingual(e5: _Memo) -> None:
    result = evaluate(e5)
    assert result.n_held_out >= 60
    assert sum(map(sum, result.confusion)) == result.n_held_out
    # Measured 0.904 (66/73) when this floor was set: `python -m query.intent --eval`.
    assert result.accuracy >= 0.85, result.mistakes


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("a kid on a skateboard at the skatepark", "visual"),
        ("what did the mayor say about the new bridge", "speech"),
        ('the shop sign that says "closed"', "ocr"),
        ("drone footage of a glacier 4K 60fps", "technical"),
        ("aerial harbour at dusk res>=2160p duration>=10s", "technical"),
        ("老人在公园里下棋", "visual"),
        ("新闻标题", "ocr"),
    ],
)
def test_real_encoder_examples(e5_clf: IntentClassifier, query: str, label: str) -> None:
    assert e5_clf.classify(query).label == label


@pytest.mark.slow
def test_heldout_accuracy_minilm() -> None:
    result = evaluate(_real_encoder("minilm"))
    # Measured 0.849 (62/73) when this floor was set; an English-only model.
    assert result.accuracy >= 0.8, result.mistakes


def test_cascade_uses_the_fast_head_only_when_it_is_sure(toy: IntentClassifier) -> None:
    """The fast head decides from the vector the search already has; below the
    threshold the strong head runs (and only then calls its encoder)."""
    fast_enc = HashingEncoder()
    fast = IntentClassifier(fast_enc, encoder_name="fast", examples=TOY).fit()
    strong_enc = HashingEncoder()
    strong = IntentClassifier(strong_enc, encoder_name="strong", examples=TOY).fit()
    q = parse("dog running on grass")
    vec = fast_enc.encode(["dog running on grass"])[0]
    calls = strong_enc.calls
    sure = strong.classify_cascade(q, fast, vec, threshold=0.0)
    assert sure.head == "fast" and sure.label == "visual" and strong_enc.calls == calls
    assert sure.to_dict()["head"] == "fast"
    unsure = strong.classify_cascade(q, fast, vec, threshold=1.01)
    assert unsure.head == "strong" and strong_enc.calls == calls + 1
    # Same probabilities either way when both heads are the same model.
    np.testing.assert_allclose(
        fast.probabilities_for_vectors(vec[None, :])[0],
        fast.model_probabilities(["dog running on grass"])[0], atol=1e-9)
