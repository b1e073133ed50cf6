"""How names compare: the matching form of a name (``normalise_alias``) and its
writing system (``script_of``), shared by the knowledge graph (``engine.graph``) and
the face identities' graph edges (``engine.catalog.identities``)."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalise_alias", "script_of"]

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA_HANGUL = r"\u3040-\u30ff\uac00-\ud7af"
_CJK_GAP = re.compile(rf"(?<=[{_HAN}{_KANA_HANGUL}]) (?=[{_HAN}{_KANA_HANGUL}])")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise_alias(text: str) -> str:
    """The matching form of a name: NFKC, case-folded, punctuation and separators
    (hyphens, the middle dot of transliterated names) as single spaces, and no space
    between two CJK characters ("成 龙" and "成龙" are one alias)."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = _NON_WORD.sub(" ", s).replace("_", " ")
    s = " ".join(s.split())
    return _CJK_GAP.sub("", s)


def script_of(text: str) -> str:
    """han | latin | other | mixed: which writing system an alias is in."""
    han = bool(re.search(f"[{_HAN}]", text))
    latin = bool(re.search(r"[A-Za-z\u00c0-\u024f]", text))
    if han and latin:
        return "mixed"
    if han:
        return "han"
    if latin:
        return "latin"
    return "other"
