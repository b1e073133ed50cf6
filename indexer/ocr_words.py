"""Words that OCR ran together, split back: "differentversion" -> "different version".

PP-OCR often drops the space between words of a line, above all in upper case titles
("SPIRALSESSIONS", "RIGHTCLICKTO") and in subtitles ("-Adifferentversion?"). A run-on
token matches no query word in BM25 and embeds as noise, so the on-screen text of such
a line was unsearchable. Each line is re-spaced before it is indexed:

- only a run of 8 or more letters that is not itself a word of the word list is tried
  (names and long words the list knows stay whole: "Schwarzenegger", "Bundesliga");
- ``wordninja`` cuts it into the most probable sequence of English words (unigram
  costs over its 126k-word list, by Zipf's law);
- the cut is kept only when every part is a common word (in the list's first
  :data:`MAX_RANK`) of at least 3 letters or one of the common 2-letter words: a word
  in another language ("Kartoffelsalat" -> "Kart of fels al at") or OCR garbage
  ("snuittersteck" -> "s nuit ter s teck") stays as it was read;
- a run inside an address (next to ``.``, ``/`` or ``@`` with more letters or digits
  beyond: "cybervillagesolution.com") stays whole, since it is searched as written.

The letters keep their case ("SPIRALSESSIONS" -> "SPIRAL SESSIONS"); what is not a run
of letters (digits, punctuation, spaces) is kept exactly.
"""
from __future__ import annotations

import functools
import gzip
import logging
import re
from pathlib import Path

__all__ = ["respace", "MIN_LETTERS", "MAX_RANK"]

log = logging.getLogger(__name__)

MIN_LETTERS = 8
MAX_RANK = 30_000
# Two-letter words common enough to trust as a part of a cut; other two-letter parts
# ("al", "os", "en") are what a wrong cut of a foreign word or a misread looks like.
SHORT_WORDS = frozenset("a i to of in on at by my we go up is it an as be do he me no or so us tv ok".split())
_LETTER_RUN = re.compile(r"[^\W\d_]+")


@functools.cache
def _model():
    """(wordninja's splitter, rank of each word in its list); None when not installed."""
    try:
        import wordninja
    except ImportError:
        log.warning("wordninja is not installed: OCR words run together stay as read "
                    "(pip install wordninja)")
        return None
    path = Path(wordninja.__file__).with_name("wordninja") / "wordninja_words.txt.gz"
    words = gzip.decompress(path.read_bytes()).decode("utf-8").split()
    return wordninja.split, {w: i for i, w in enumerate(words)}


def _cut(run: str, split, rank: dict[str, int]) -> str:
    low = run.lower()
    if len(run) < MIN_LETTERS or low in rank or not run.isascii():
        return run
    parts = split(low)
    if len(parts) < 2 or "".join(parts) != low:
        return run
    for p in parts:
        if rank.get(p, MAX_RANK) >= MAX_RANK or (len(p) < 3 and p not in SHORT_WORDS):
            return run
    out, at = [], 0
    for p in parts:  # the original letters, so the case is kept
        out.append(run[at: at + len(p)])
        at += len(p)
    return " ".join(out)


def _in_address(text: str, start: int, end: int) -> bool:
    before = start >= 2 and text[start - 1] in "./@" and text[start - 2].isalnum()
    after = end + 1 < len(text) and text[end] in "./@" and text[end + 1].isalnum()
    return before or after


def respace(text: str) -> str:
    """``text`` with each run-on word that splits into common words split."""
    model = _model()
    if model is None or not text:
        return text
    split, rank = model

    def one(m: re.Match) -> str:
        if _in_address(text, m.start(), m.end()):
            return m.group(0)
        return _cut(m.group(0), split, rank)

    return _LETTER_RUN.sub(one, text)
