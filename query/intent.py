"""Query intent: which modalities a query is about, and how much to weigh each.

Five intents, each with a weight vector over the index's modality blocks
(:data:`MODALITIES`). The classifier is data-driven: a multinomial logistic regression
(numpy) over text-encoder embeddings of the labelled queries in
``query/data/intent_examples.jsonl``, plus a few keyword rules where a cue is clearer
than an embedding (quoted text, "says", "subtitle", a resolution filter). Rules add
log-odds to the model's output; they do not override it.

The query vector's per-modality weights are the probability-weighted mix of the
intents' weight vectors, so a confident query gets its intent's routing and an
uncertain one a blend (the design notes found that equal mixing drowns the visual
signal, so routing matters).

Run ``python -m query.intent --eval [--encoder minilm]`` for held-out accuracy and the
confusion matrix, or ``python -m query.intent "some query"`` to see one prediction.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import re
import sys
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from engine.catalog import MODALITIES  # the index's modality blocks, defined once
from engine.errors import (
    CorruptIndexError,
    IndexMismatchError,
    InputError,
    NotFoundError,
    UnknownNameError,
)
from engine.cache import cache_root
from query.concepts import find_concepts
from query.parse import ParsedQuery, parse

__all__ = [
    "INTENTS",
    "MODALITIES",
    "DEFAULT_INTENT_WEIGHTS",
    "DEFAULT_EXAMPLES_PATH",
    "Encoder",
    "IntentExample",
    "Intent",
    "Rule",
    "DEFAULT_RULES",
    "IntentClassifier",
    "CASCADE_THRESHOLD",
    "evaluate_cascade",
    "EvalResult",
    "load_examples",
    "split_examples",
    "get_intent_classifier",
    "evaluate",
    "main",
]

INTENTS: tuple[str, ...] = ("visual", "speech", "ocr", "entity", "technical")
# The fast head decides when its top probability reaches this (see classify_cascade).
CASCADE_THRESHOLD = 0.8

# Each row sums to 1. Why these numbers:
# - visual: the scene is in the frames; a little metadata (titles, tags often name the
#   subject) and a trace of speech/ocr so a hit that also mentions it ranks higher.
# - speech: a quote or topic lives in the transcript; metadata (descriptions) second.
# - ocr: on-screen text; speech second because titles and captions are often read out.
# - entity: names live in catalogue metadata first, then in what is said and shown as
#   text (lower thirds, credits); faces are not indexed, so visual helps little.
# - technical: stock-footage requests describe a shot (visual) and constraints the
#   catalogue holds (metadata); hard constraints are applied as filters, not weights.
DEFAULT_INTENT_WEIGHTS: dict[str, dict[str, float]] = {
    "visual": {"visual": 0.80, "speech": 0.05, "ocr": 0.05, "metadata": 0.10},
    "speech": {"visual": 0.05, "speech": 0.80, "ocr": 0.05, "metadata": 0.10},
    "ocr": {"visual": 0.05, "speech": 0.10, "ocr": 0.75, "metadata": 0.10},
    "entity": {"visual": 0.10, "speech": 0.30, "ocr": 0.20, "metadata": 0.40},
    "technical": {"visual": 0.60, "speech": 0.00, "ocr": 0.00, "metadata": 0.40},
}

DEFAULT_EXAMPLES_PATH = Path(__file__).parent / "data" / "intent_examples.jsonl"

# Chosen by 5-fold cross-validation on the training split only (0.1-0.3 were best for
# both the e5-multilingual and the minilm encoder; 1.0 underfits).
_DEFAULT_L2 = 0.3
_MAX_ITERS = 3000
_GRAD_TOL = 1e-6


class Encoder(Protocol):
    """What the classifier needs from a text encoder (engine.models.base.TextEncoder)."""

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows."""


@dataclass(frozen=True)
class IntentExample:
    """One labelled query from the examples file."""

    text: str
    intent: str

    def __post_init__(self) -> None:
        if self.intent not in INTENTS:
            raise UnknownNameError("intent", self.intent, INTENTS)
        if not self.text.strip():
            raise InputError("an intent example has empty text", hint="remove the line")


@dataclass(frozen=True)
class Intent:
    """The classifier's answer for one query.

    ``scores`` are probabilities per intent (they sum to 1); ``weights`` are the
    per-modality weights to build the query vector and fuse with (they sum to 1);
    ``rules_fired`` names the keyword rules that shifted the scores.
    """

    label: str
    confidence: float
    scores: dict[str, float]
    weights: dict[str, float]
    rules_fired: tuple[str, ...] = ()
    head: str = ""  # the encoder whose head decided (see IntentClassifier.classify_cascade)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to 4 decimals (the ``intent`` object of ``search --json``)."""
        out = {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
            "rules_fired": list(self.rules_fired),
        }
        if self.head:
            out["head"] = self.head
        return out


@dataclass(frozen=True)
class Rule:
    """A cue that adds ``boosts`` (log-odds per intent) when ``test`` holds for a query."""

    name: str
    test: Callable[[ParsedQuery], bool]
    boosts: dict[str, float]

    def __post_init__(self) -> None:
        for intent in self.boosts:
            if intent not in INTENTS:
                raise UnknownNameError("intent", intent, INTENTS)


def _words(pattern: str) -> Callable[[ParsedQuery], bool]:
    """Case-insensitive regex over the query's free text and phrases."""
    rx = re.compile(pattern, re.IGNORECASE)
    return lambda q: bool(rx.search(q.search_text))


# English cues use word boundaries ("sign" must not fire on "design"). Ambiguous words
# are left to the model: "reading" (a person reading a book), "slide" (a playground),
# "interview" and "quote" (entity and ocr queries use them too).
_SPEECH_CUES = (
    r"\b(?:says?|said|saying|talks? about|talking about|talked about|mentions?|mentioned|"
    r"mentioning|narrator|narration|voice-?over)\b|说|讲|谈到|提到|聊到|旁白|台词"
)
_OCR_CUES = (
    r"\b(?:text|captions?|captioned|signs?|signage|title cards?|subtitles?|subtitled|"
    r"on-?screen|written|banner|lower thirds?|chyron|headline|credits|scoreboard|billboard|"
    r"watermark)\b|字幕|标题|文字|招牌|写着|路牌|标语|横幅"
)

def _no_name(q: ParsedQuery) -> bool:
    """No word is written like a name: cased letters, none of them upper case (``hello
    world``, not ``Hello World`` or ``Taylor Swift``). Scripts without case (Chinese,
    Japanese, Korean) never count: their names look like any other word."""
    text = q.search_text
    cased = [c for c in text if c.isalpha() and c.lower() != c.upper()]
    return bool(cased) and not any(c.isupper() for c in cased) and len(cased) == sum(c.isalpha() for c in text)


_ocr_cue = _words(_OCR_CUES)


def _names_picture_style(q: ParsedQuery) -> bool:
    """The query names how the picture is made (cartoon, black and white, test pattern:
    the concept bank's style labels, query.concepts) and asks for no on-screen text. A
    screen capture is left out: people look for those by the text on them."""
    if _ocr_cue(q):
        return False
    return any(kind == "style" and label != "screen"
               for c in find_concepts(q.search_text) for kind, label, _ in c.labels)


DEFAULT_RULES: tuple[Rule, ...] = (
    # Quoted text must match in speech or on screen: favour both, let the model split.
    Rule("quoted_phrase", lambda q: bool(q.phrases), {"speech": 1.0, "ocr": 1.0}),
    Rule("speech_cue", _words(_SPEECH_CUES), {"speech": 1.5}),
    Rule("ocr_cue", _ocr_cue, {"ocr": 1.5}),
    # The intent examples hold no style queries, and "colour bars test pattern" read as
    # on-screen text (ocr 0.78); the frame labellers see styles (indexer.picture).
    Rule("picture_style", _names_picture_style, {"visual": 2.0}),
    Rule("technical_filter", lambda q: q.filters.has_technical, {"technical": 2.0}),
    Rule("person_filter", lambda q: bool(q.filters.people), {"entity": 1.5}),
    # Every entity example names someone or something with capitals; a lower-case query
    # that the model still calls "entity" ("hello world") is a phrase, not a name. A name
    # the knowledge graph knows is boosted back (query.entities.EntityMatch.apply_intent).
    Rule("no_name", _no_name, {"entity": -3.0}),
    Rule("has_speech_filter", lambda q: "speech" in q.filters.has, {"speech": 1.0}),
    Rule("has_text_filter", lambda q: "text" in q.filters.has, {"ocr": 1.0}),
)


def load_examples(path: str | Path | None = None) -> list[IntentExample]:
    """Read a JSONL file of ``{"text": ..., "intent": ...}`` lines (default: the packaged one)."""
    p = Path(path) if path is not None else DEFAULT_EXAMPLES_PATH
    if not p.is_file():
        raise NotFoundError(
            f"intent examples file {str(p)!r} does not exist",
            hint="pass the path of a JSONL file of {text, intent} lines",
        )
    out: list[IntentExample] = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(IntentExample(text=str(row["text"]), intent=str(row["intent"])))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputError(
                    f"{p}:{lineno}: not an intent example ({e})",
                    hint='each line must be {"text": "...", "intent": "..."}',
                ) from e
    if not out:
        raise InputError(f"intent examples file {str(p)!r} is empty", hint="add labelled lines")
    return out


def split_examples(
    examples: Sequence[IntentExample], every: int = 5
) -> tuple[list[IntentExample], list[IntentExample]]:
    """Deterministic (train, held_out): every ``every``-th example of each intent is held out.

    Counting per intent keeps the held-out part balanced whatever the file's order.
    """
    if every < 2:
        raise InputError(f"every={every} holds out everything", hint="use every >= 2")
    seen: dict[str, int] = {}
    train: list[IntentExample] = []
    held: list[IntentExample] = []
    for ex in examples:
        n = seen.get(ex.intent, 0)
        seen[ex.intent] = n + 1
        (held if n % every == every - 1 else train).append(ex)
    return train, held


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _fit_softmax_regression(
    x: np.ndarray, y: np.ndarray, n_classes: int, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by Nesterov-accelerated gradient descent.

    The step is 1/L for L an upper bound on the loss's curvature (half the largest
    eigenvalue of X'X/n, plus l2), so it converges without tuning; deterministic.
    """
    n, d = x.shape
    onehot = np.eye(n_classes)[y]
    lipschitz = 0.5 * float(np.linalg.norm(x, ord=2) ** 2) / n + l2
    step = 1.0 / lipschitz
    w = np.zeros((d, n_classes))
    b = np.zeros(n_classes)
    w_prev, b_prev = w.copy(), b.copy()
    for t in range(1, _MAX_ITERS + 1):
        mom = (t - 1) / (t + 2)
        wl = w + mom * (w - w_prev)
        bl = b + mom * (b - b_prev)
        g = (_softmax(x @ wl + bl) - onehot) / n
        gw = x.T @ g + l2 * wl
        gb = g.sum(axis=0)
        w_prev, b_prev = w, b
        w, b = wl - step * gw, bl - step * gb
        if max(float(np.abs(gw).max()), float(np.abs(gb).max())) < _GRAD_TOL:
            break
    return w, b


class IntentClassifier:
    """Embeds the query, scores intents with a softmax regression, applies rules.

    Cheap to build; :meth:`fit` (called on first use) embeds the training examples.
    ``encoder`` is any object with ``encode(texts, is_query=True)``; when None, the
    registry's ``encoder_name`` is loaded lazily (``engine.models.registry``).
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        encoder_name: str = "e5-multilingual",
        examples: Sequence[IntentExample] | None = None,
        intent_weights: dict[str, dict[str, float]] | None = None,
        rules: Sequence[Rule] = DEFAULT_RULES,
        l2: float = _DEFAULT_L2,
    ) -> None:
        weights = intent_weights if intent_weights is not None else DEFAULT_INTENT_WEIGHTS
        _check_weights(weights)
        if l2 < 0:
            raise InputError(f"l2={l2} is negative", hint="use l2 >= 0")
        self._encoder = encoder
        self.encoder_name = encoder_name
        self._examples = list(examples) if examples is not None else None
        self.intent_weights = {i: dict(weights[i]) for i in INTENTS}
        self.rules = tuple(rules)
        self.l2 = l2
        self._model: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self._fit_lock = threading.Lock()

    @classmethod
    def default(cls, encoder_name: str = "e5-multilingual") -> IntentClassifier:
        """The shared classifier for ``encoder_name`` (see :func:`get_intent_classifier`)."""
        return get_intent_classifier(encoder_name)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            # Lazy: importing the registry must not load weights or slow startup.
            from engine.models.registry import get_text_encoder

            self._encoder = get_text_encoder(self.encoder_name)
        return self._encoder

    @property
    def is_fitted(self) -> bool:
        return self._model is not None

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        x = np.asarray(self.encoder.encode(list(texts), is_query=True), dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(texts) or not np.isfinite(x).all():
            raise InputError(
                f"the text encoder returned an array of shape {x.shape} (or non-finite "
                f"values) for {len(texts)} texts",
                hint="check the encoder: it must return one finite row per text",
            )
        return x

    def fit(self, examples: Sequence[IntentExample] | None = None) -> IntentClassifier:
        """Train on ``examples`` (default: every example in the packaged file; the
        held-out split exists to measure, see :func:`evaluate`, not to leave out of
        the served model)."""
        if examples is None:
            examples = self._examples
        if examples is None:
            examples = load_examples()
        missing = [i for i in INTENTS if not any(e.intent == i for e in examples)]
        if missing:
            raise InputError(
                f"intent examples have no example of {missing}",
                hint="add labelled examples for every intent",
            )
        texts = [_model_text(parse(e.text)) for e in examples]
        x = self._embed(texts)
        y = np.array([INTENTS.index(e.intent) for e in examples])
        # Centre and scale globally: e5 rows share a large common direction (unrelated
        # sentences have cosine ~0.8), which slows plain gradient descent badly.
        mean = x.mean(axis=0)
        scale = float((x - mean).std()) or 1.0
        w, b = _fit_softmax_regression((x - mean) / scale, y, len(INTENTS), self.l2)
        self._model = (w, b, mean, scale)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The fitted model, fitting it on first use."""
        if self._model is None:
            # One fit even when concurrent requests arrive before the first finishes.
            with self._fit_lock:
                if self._model is None:
                    self.fit()
        return self._model  # type: ignore[return-value]

    def model_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(INTENTS)) probabilities from the model alone, before rules."""
        self._fitted()
        if not texts:
            return np.zeros((0, len(INTENTS)))
        return self.probabilities_for_vectors(self._embed(texts))

    def probabilities_for_vectors(self, x: np.ndarray) -> np.ndarray:
        """(n, len(INTENTS)) model probabilities for texts this head's encoder already
        embedded (rows of ``x``), e.g. the query vector a search computed anyway."""
        w, b, mean, scale = self._fitted()
        return _softmax(((np.asarray(x, dtype=np.float64) - mean) / scale) @ w + b)

    def classify_cascade(self, parsed: ParsedQuery, fast: IntentClassifier, vector: np.ndarray,
                         threshold: float = CASCADE_THRESHOLD) -> Intent:
        """Intent from ``fast``'s head over ``vector`` (the query embedded by ``fast``'s
        encoder) when that head is at least ``threshold`` sure, else from this one.

        Why: this head's encoder (multilingual E5 by default) is a second transformer
        pass per search, about 9 ms of a 45 ms search at 1M segments, while the
        retrieval encoder's vector is already there. Held out (``python -m query.intent
        --eval-cascade``), the MiniLM head at 0.8 or more confidence agreed with the
        gold label as often as E5 did on the same queries, and the cascade's accuracy
        equalled E5's alone on three splits.
        """
        probs = fast.probabilities_for_vectors(np.asarray(vector)[None, :])[0]
        if _model_text(parsed) and float(probs.max()) >= threshold:
            return replace(fast._finish(parsed, probs), head=fast.encoder_name)
        return replace(self.classify(parsed), head=self.encoder_name)

    def classify(self, query: str | ParsedQuery, *, parsed: ParsedQuery | None = None) -> Intent:
        """Intent of one query (raw text, parsed on the way, or a ParsedQuery).

        ``parsed``, when given, is used instead of parsing ``query`` again (callers
        that already parsed pass both). Raw text that does not parse raises
        QuerySyntaxError.
        """
        return self.classify_many([parsed if parsed is not None else query])[0]

    def classify_many(self, queries: Sequence[str | ParsedQuery]) -> list[Intent]:
        """Batch version of :meth:`classify`: one encoder call for all queries."""
        parsed = [q if isinstance(q, ParsedQuery) else parse(q) for q in queries]
        texts = [_model_text(p) for p in parsed]
        with_text = [i for i, t in enumerate(texts) if t]
        probs = np.full((len(parsed), len(INTENTS)), 1.0 / len(INTENTS))
        if with_text:
            # A query of filters only has no text to embed: start from a uniform prior
            # and let the rules (e.g. a resolution filter -> technical) decide.
            probs[with_text] = self.model_probabilities([texts[i] for i in with_text])
        return [self._finish(p, row) for p, row in zip(parsed, probs)]

    def _finish(self, parsed: ParsedQuery, probs: np.ndarray) -> Intent:
        logits = np.log(np.clip(probs, 1e-12, None))
        fired: list[str] = []
        for rule in self.rules:
            if rule.test(parsed):
                fired.append(rule.name)
                for intent, boost in rule.boosts.items():
                    logits[INTENTS.index(intent)] += boost
        p = _softmax(logits)
        # Ties (a uniform prior with no rule) go to the first intent in INTENTS order.
        best = int(np.argmax(p))
        weights = {
            m: float(sum(p[i] * self.intent_weights[name][m] for i, name in enumerate(INTENTS)))
            for m in MODALITIES
        }
        return Intent(
            label=INTENTS[best],
            confidence=float(p[best]),
            scores={name: float(p[i]) for i, name in enumerate(INTENTS)},
            weights=weights,
            rules_fired=tuple(fired),
        )

    # -- persistence: fitting embeds every example (seconds on 2 cores), so callers
    # that start often (the CLI) can keep the fitted model next to their index.
    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (.npz) with the data and encoder it came from."""
        if self._model is None:
            self.fit()
        w, b, mean, scale = self._model  # type: ignore[misc]
        np.savez(
            Path(path),
            w=w,
            b=b,
            mean=mean,
            scale=np.array(scale),
            meta=np.array(json.dumps(self._fingerprint())),
        )

    def load(self, path: str | Path) -> IntentClassifier:
        """Load a model written by :meth:`save`; raises IndexMismatchError when it was
        fitted with another encoder, examples, l2 or intent list."""
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"intent model {str(p)!r} does not exist", hint="call save() first")
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                model = (z["w"], z["b"], z["mean"], float(z["scale"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise CorruptIndexError(
                f"intent model {str(p)!r} cannot be read ({e})", hint="delete it and save() again"
            ) from e
        expected = self._fingerprint()
        if meta != expected:
            raise IndexMismatchError(
                f"intent model {str(p)!r} was fitted with {meta}, not {expected}",
                hint="refit with fit() and save() again",
            )
        self._model = model
        return self

    def _fingerprint(self) -> dict[str, Any]:
        examples = self._examples if self._examples is not None else load_examples()
        digest = hashlib.sha256(
            "\n".join(f"{e.intent}\t{e.text}" for e in examples).encode("utf-8")
        ).hexdigest()
        enc = self.encoder
        info = getattr(enc, "info", None)
        return {
            "encoder": (
                info.as_dict()
                if info is not None
                else f"{type(enc).__module__}.{type(enc).__qualname__}"
            ),
            "examples_sha256": digest,
            "l2": self.l2,
            "intents": list(INTENTS),
        }


def _model_text(parsed: ParsedQuery) -> str:
    """What the model embeds: the free text and phrases, without field syntax."""
    return parsed.search_text


def _check_weights(weights: dict[str, dict[str, float]]) -> None:
    for intent in INTENTS:
        if intent not in weights:
            raise InputError(
                f"intent weights have no row for {intent!r}",
                hint=f"give a row for each of {INTENTS}",
            )
        row = weights[intent]
        bad = [m for m in row if m not in MODALITIES]
        if bad:
            raise UnknownNameError("modality", bad[0], MODALITIES)
        if any(not np.isfinite(v) or v < 0 for v in row.values()) or sum(row.values()) <= 0:
            raise InputError(
                f"intent weights for {intent!r} must be finite, >= 0 and not all 0: {row}",
                hint="fix the weights",
            )
    for intent in weights:
        if intent not in INTENTS:
            raise UnknownNameError("intent", intent, INTENTS)


@functools.lru_cache(maxsize=4)
def get_intent_classifier(encoder_name: str = "e5-multilingual") -> IntentClassifier:
    """One shared classifier per registry encoder name, fitted once per machine.

    Fitting embeds every example (tens of seconds on 2 cores), so the fitted head is
    kept in the user cache (``engine.cache``), keyed by encoder, example data and l2;
    ``load`` refuses a stale file and it is refitted and rewritten atomically."""
    clf = IntentClassifier(encoder_name=encoder_name)
    fp = clf._fingerprint()
    key = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "intent" / f"{encoder_name}-{key}.npz"
    try:
        return clf.load(path)
    except (NotFoundError, IndexMismatchError, CorruptIndexError):
        pass
    clf.fit()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        clf.save(tmp)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home must not break search: just refit next time
        logging.getLogger("vidseek.query").warning("cannot cache the intent model at %s: %s", path, e)
    return clf


@dataclass(frozen=True)
class EvalResult:
    """Held-out accuracy, with and without the rules, and the confusion matrix
    (rows: true intent, columns: predicted, both in ``labels`` order)."""

    accuracy: float
    model_only_accuracy: float
    labels: tuple[str, ...]
    confusion: list[list[int]]
    n_train: int
    n_held_out: int
    mistakes: list[tuple[str, str, str]] = field(default_factory=list)  # text, true, predicted

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "model_only_accuracy": self.model_only_accuracy,
            "labels": list(self.labels),
            "confusion": self.confusion,
            "n_train": self.n_train,
            "n_held_out": self.n_held_out,
            "mistakes": [list(m) for m in self.mistakes],
        }


def evaluate(
    encoder: Encoder | None = None,
    *,
    encoder_name: str = "e5-multilingual",
    examples: Sequence[IntentExample] | None = None,
    every: int = 5,
) -> EvalResult:
    """Fit on the training split and score the held-out split (see :func:`split_examples`)."""
    all_examples = list(examples) if examples is not None else load_examples()
    train, held = split_examples(all_examples, every)
    if not held:
        raise InputError("no held-out examples", hint=f"use at least {every} examples per intent")
    clf = IntentClassifier(encoder, encoder_name=encoder_name, examples=train).fit()
    gold = [INTENTS.index(e.intent) for e in held]
    predicted = [INTENTS.index(i.label) for i in clf.classify_many([e.text for e in held])]
    model_only = clf.model_probabilities([_model_text(parse(e.text)) for e in held]).argmax(axis=1)
    confusion = [[0] * len(INTENTS) for _ in INTENTS]
    for g, p in zip(gold, predicted):
        confusion[g][p] += 1
    n = len(held)
    return EvalResult(
        accuracy=sum(g == p for g, p in zip(gold, predicted)) / n,
        model_only_accuracy=float(np.mean(model_only == np.array(gold))),
        labels=INTENTS,
        confusion=confusion,
        n_train=len(train),
        n_held_out=n,
        mistakes=[
            (e.text, INTENTS[g], INTENTS[p]) for e, g, p in zip(held, gold, predicted) if g != p
        ],
    )


def evaluate_cascade(
    strong_name: str = "e5-multilingual",
    fast_name: str = "minilm",
    thresholds: Sequence[float] = (0.6, 0.7, 0.8, 0.9, 0.95),
    splits: Sequence[int] = (5, 4, 3),
) -> list[dict[str, Any]]:
    """Held-out accuracy of the strong head, the fast head, and the cascade at each
    threshold (with how often the fast head decides), on several deterministic splits."""
    rows: list[dict[str, Any]] = []
    examples = load_examples()
    for every in splits:
        train, held = split_examples(examples, every)
        strong = IntentClassifier(encoder_name=strong_name, examples=train).fit()
        fast = IntentClassifier(encoder_name=fast_name, examples=train).fit()
        parsed = [parse(e.text) for e in held]
        gold = np.array([INTENTS.index(e.intent) for e in held])
        vectors = fast.encoder.encode([_model_text(q) for q in parsed], is_query=True)
        strong_pred = np.array([INTENTS.index(i.label) for i in strong.classify_many(parsed)])
        fast_pred = np.array([INTENTS.index(fast._finish(q, pr).label)
                              for q, pr in zip(parsed, fast.probabilities_for_vectors(vectors))])
        row: dict[str, Any] = {"every": every, "n": len(held), strong_name: float(np.mean(strong_pred == gold)),
                               fast_name: float(np.mean(fast_pred == gold)), "cascade": {}}
        for tau in thresholds:
            got = [strong.classify_cascade(q, fast, v, threshold=tau) for q, v in zip(parsed, vectors)]
            pred = np.array([INTENTS.index(i.label) for i in got])
            row["cascade"][str(tau)] = {"accuracy": float(np.mean(pred == gold)),
                                        "fast_share": float(np.mean([i.head == fast_name for i in got]))}
        rows.append(row)
    return rows


def _format_eval(name: str, r: EvalResult) -> str:
    width = max(len(x) for x in r.labels) + 2
    lines = [
        f"encoder: {name}",
        f"train {r.n_train}, held out {r.n_held_out}",
        f"held-out accuracy: {r.accuracy:.3f} (model only, no rules: {r.model_only_accuracy:.3f})",
        "confusion (rows: true, columns: predicted):",
        " " * width + "".join(f"{x:>{width}}" for x in r.labels),
    ]
    for label, row in zip(r.labels, r.confusion):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    if r.mistakes:
        lines.append("mistakes:")
        lines += [f"  {t!r}: {g} -> {p}" for t, g, p in r.mistakes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m query.intent --eval`` or ``python -m query.intent "a query"``."""
    ap = argparse.ArgumentParser(prog="python -m query.intent", description=__doc__.split("\n")[0])
    ap.add_argument("query", nargs="?", help="a query to classify")
    ap.add_argument("--eval", action="store_true", help="held-out accuracy and confusion matrix")
    ap.add_argument("--encoder", default="e5-multilingual", help="registry text encoder name")
    ap.add_argument("--eval-cascade", action="store_true",
                    help="held-out accuracy of the MiniLM -> E5 cascade at several thresholds")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.eval_cascade:
        rows = evaluate_cascade()
        if args.json:
            print(json.dumps(rows))
            return 0
        for r in rows:
            print(f"split every={r['every']} (n={r['n']}): e5 {r['e5-multilingual']:.3f}  minilm {r['minilm']:.3f}")
            for tau, c in r["cascade"].items():
                print(f"  cascade at {tau}: accuracy {c['accuracy']:.3f}, minilm decides {c['fast_share']:.0%}")
        return 0
    if not args.eval and args.query is None:
        ap.error("give a query or --eval")
    if args.eval:
        result = evaluate(encoder_name=args.encoder)
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            print(_format_eval(args.encoder, result))
        return 0
    intent = IntentClassifier(encoder_name=args.encoder).classify(args.query)
    print(json.dumps(intent.to_dict(), ensure_ascii=False, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
