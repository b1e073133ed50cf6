"""Write ``engine/models/imagenet_hypernyms.txt``: each ImageNet-1k class's WordNet
3.0 hypernym chain, for the ConSE class prompts (``engine.models.imagenet``, option
``hypernyms``).

    python scripts/imagenet_hypernyms.py [--wordnet /usr/share/wordnet/data.noun]

An ImageNet class id ("n02085620") is a WordNet 3.0 noun synset offset. For each of the
1000 classes (in timm's ``imagenet_synsets.txt`` order) the output holds one line,
``synset<TAB>parent|grandparent|...|entity``: the first lemma of each synset on the path
of first hypernyms ("@" or "@i" pointers) from the class up to the root. The data comes
from Debian's ``wordnet-base`` package (``apt-get install wordnet-base``); the file is
committed, so neither the package nor this script is needed at run time. Stdlib only.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. (License:
``engine/models/WORDNET-LICENSE.txt``, kept beside the output as the license asks.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "models" / "imagenet_hypernyms.txt"
EXPECTED = 1000  # ImageNet-1k


def read_nouns(path: Path) -> dict[str, tuple[str, str | None]]:
    """offset -> (first lemma, offset of its first hypernym or None), from data.noun."""
    out: dict[str, tuple[str, str | None]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line or line.startswith("  "):  # the license header's lines start with two spaces
            continue
        fields = line.split(" | ", 1)[0].split()
        offset, n_words = fields[0], int(fields[3], 16)
        lemma = fields[4].replace("_", " ")
        k = 4 + 2 * n_words
        parent = None
        for j in range(int(fields[k])):
            symbol, target, pos = fields[k + 1 + 4 * j: k + 4 + 4 * j]
            if symbol in ("@", "@i") and pos == "n":
                parent = target
                break
        out[offset] = (lemma, parent)
    return out


def chain(nouns: dict[str, tuple[str, str | None]], offset: str) -> list[str]:
    lemmas, seen = [], {offset}
    parent = nouns[offset][1]
    while parent is not None and parent not in seen:
        seen.add(parent)
        lemmas.append(nouns[parent][0])
        parent = nouns[parent][1]
    return lemmas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet/data.noun"))
    ap.add_argument("--synsets", type=Path, help="imagenet_synsets.txt (default: timm's, read as a file)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not args.wordnet.is_file():
        print(f"error: no WordNet noun data at {args.wordnet}; apt-get install wordnet-base", file=sys.stderr)
        return 2
    if args.synsets is None:
        import importlib.util

        spec = importlib.util.find_spec("timm")
        if spec is None or spec.origin is None:
            print("error: timm is not installed; pass --synsets FILE", file=sys.stderr)
            return 2
        args.synsets = Path(spec.origin).parent / "data" / "_info" / "imagenet_synsets.txt"
    nouns = read_nouns(args.wordnet)
    synsets = args.synsets.read_text().split()
    missing = [s for s in synsets if s[1:] not in nouns]
    if len(synsets) != EXPECTED or missing:
        print(f"error: expected {EXPECTED} WordNet noun synsets, got {len(synsets)} ({len(missing)} unknown, "
              f"e.g. {missing[:3]})", file=sys.stderr)
        return 2
    lines = [f"{s}\t{'|'.join(chain(nouns, s[1:]))}" for s in synsets]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(lines)} classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
