"""Text to BM25 tokens: one deterministic tokeniser shared by every lexical backend.

Both the documents and the queries go through :func:`tokenize`, and the backends index
the tokens as given (tantivy with its ``whitespace`` tokenizer), so a token that a
query produces matches exactly the same token in a document, whatever the script.

Rules, in order:

1. Unicode NFKC, then lowercase: full-width ``ＡＢＣ１２３`` becomes ``abc123``, ligatures
   split, compatibility forms fold.
2. The text is cut into runs by script:

   - **Han** (Chinese characters; also the kanji of Japanese text): segmented by
     jieba in search mode (``cut_for_search``), which emits the words of a long
     compound as well as the compound (``中华人民共和国`` gives ``中华 ... 共和国
     中华人民共和国``), so a query for a part matches the whole.
   - **Kana** (Japanese) and **Hangul** (Korean): overlapping character bigrams (a
     run of one character stays a unigram), as Lucene's CJK analyzer does; no
     dictionary is needed and a two-character query matches inside longer words.
   - **Words** of any other script (Latin, Cyrillic, Greek, Arabic, Indic, ...):
     letters and digits; every other character separates. Inside a word an
     apostrophe joins (``don't`` -> ``dont``, ``rock'n'roll`` -> ``rocknroll``) except
     a final ``'s``, which is dropped (``car's`` -> ``car``); digits separated by a
     dot stay one token (``3.5``), a thousands comma is removed (``1,000`` -> ``1000``),
     dotted initialisms join (``u.s.a.`` -> ``usa``). A word then splits where
     letters meet digits (``iphone15`` -> ``iphone 15``, ``1080p`` -> ``1080 p``) so
     that ``iPhone15`` and ``iPhone 15`` match each other; a phrase query keeps the
     two tokens together when order matters.

3. A small stop-word list (Lucene's English set and a few Chinese particles) is
   removed; tokens longer than :data:`MAX_TOKEN_CHARS` are dropped (base64 blobs and
   OCR garbage, which no one searches for).

No stemming: on short segment texts, stemming merges words that users keep apart
("news"/"new", "parking"/"park") and the dense retrievers already cover morphology.

jieba logs to stderr when it loads its dictionary; the tokenizer is built lazily
with jieba's logger raised to WARNING. A private ``jieba.Tokenizer`` is used, not
the global one, so that code elsewhere calling ``jieba.add_word`` cannot change the
tokens of an existing index. Bump :data:`TOKENIZER_VERSION` whenever the output of
:func:`tokenize` changes for some input: an index built by another version is
refused on open (it must be rebuilt).
"""
from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import jieba

__all__ = [
    "ENGLISH_STOP_WORDS",
    "CHINESE_STOP_WORDS",
    "MAX_TOKEN_CHARS",
    "TOKENIZER_VERSION",
    "tokenize",
]

TOKENIZER_VERSION = "1"

MAX_TOKEN_CHARS = 64

# Lucene's ENGLISH_STOP_WORDS_SET (StandardAnalyzer / EnglishAnalyzer): small and
# well known, so a user who wonders why "the" is not matched can look it up.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the "
    "their then there these they this to was will with".split()
)

# Particles and connectives that occur in nearly every Chinese sentence.
CHINESE_STOP_WORDS: frozenset[str] = frozenset(
    "的 了 着 是 在 和 与 及 或 之 吗 呢 吧 啊 呀 嘛".split()
)

_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# Hiragana and Katakana without U+30FB (the katakana middle dot, punctuation).
_KANA = "\u3041-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"
# Combining marks that Python's \w leaves out but that are part of words after NFKC:
# leftover Latin diacritics and the vowel signs of Indic scripts and Thai (their
# danda punctuation, U+0964/U+0965, excluded).
_MARKS = "\u0300-\u036f\u0900-\u0963\u0966-\u0dff\u0e00-\u0e7f"
# A word character: \w minus "_" minus the CJK scripts handled above, or a mark.
_W = f"(?:[^\\W_{_HAN}{_KANA}{_HANGUL}]|[{_MARKS}])"

_RUN_RE = re.compile(
    f"(?P<han>[{_HAN}]+)"
    f"|(?P<kana>[{_KANA}]+)"
    f"|(?P<hangul>[{_HANGUL}]+)"
    # a word, with joins: apostrophe + more word, digit.digit, digit,ddd (thousands)
    f"|(?P<word>{_W}+(?:['\u2019]{_W}+|(?<=\\d)\\.(?=\\d){_W}+|(?<=\\d),(?=\\d{{3}}(?!\\d)){_W}+)*)"
)
# Dotted initialisms (u.s.a., e.g.): at least two single letters each followed by a
# dot; the dots are removed before words are cut so the letters join.
_INITIALISM_RE = re.compile(r"(?<![^\W\d_])(?:[^\W\d_]\.){2,}")
# Letter/digit boundaries; a number keeps its decimal dots.
_ALNUM_SPLIT_RE = re.compile(r"\d+(?:\.\d+)*|\D+")

_jieba_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _jieba_tokenizer() -> "jieba.Tokenizer":
    """Load jieba's default dictionary once, quietly (it logs to stderr at DEBUG)."""
    with _jieba_lock:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        return tokenizer


@functools.lru_cache(maxsize=65536)
def _segment_han(run: str) -> tuple[str, ...]:
    """jieba search-mode words of one run of Han characters (cached: runs repeat)."""
    return tuple(w for w in _jieba_tokenizer().cut_for_search(run, HMM=True) if w.strip())


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _word_tokens(word: str) -> list[str]:
    """Apply the apostrophe, number and letter/digit rules to one matched word."""
    if "'" in word or "\u2019" in word:
        parts = re.split("['\u2019]", word)
        if len(parts) > 1 and parts[-1] == "s":
            parts.pop()
        word = "".join(parts)
    if "," in word:
        word = word.replace(",", "")
    if word.isalpha():  # the common case: no digits, nothing to split
        return [word]
    return _ALNUM_SPLIT_RE.findall(word)


def tokenize(text: str) -> list[str]:
    """Return the BM25 tokens of ``text`` (see the module docstring for the rules).

    Deterministic and total: any string gives a list, possibly empty; ``None`` or a
    non-string raises ``TypeError`` (a programming error, not user input).
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize() takes a str, got {type(text).__name__}")
    if not text:
        return []
    text = unicodedata.normalize("NFKC", text).lower()
    if "." in text:
        text = _INITIALISM_RE.sub(lambda m: m.group(0).replace(".", ""), text)
    out: list[str] = []
    for m in _RUN_RE.finditer(text):
        kind = m.lastgroup
        run = m.group(0)
        if kind == "word":
            for tok in _word_tokens(run):
                if tok not in ENGLISH_STOP_WORDS and len(tok) <= MAX_TOKEN_CHARS:
                    out.append(tok)
        elif kind == "han":
            out.extend(
                w for w in _segment_han(run) if w not in CHINESE_STOP_WORDS and len(w) <= MAX_TOKEN_CHARS
            )
        else:  # kana or hangul
            out.extend(_bigrams(run))
    return out
