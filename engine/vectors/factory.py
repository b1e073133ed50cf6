"""Factory strings: what ``approx_factory`` resolves to for a shard's FAISS index.

``approx_factory`` is ``"auto"``, ``"compressed"`` or a FAISS factory string; a
template's ``{nlist}`` is filled from the shard's size when the shard is (re)built.
``@disk`` is vidseek's one extension of the syntax: a final ``Refine(SQfp16@disk)``
keeps the float16 refine rows in an append-only file (:mod:`engine.vectors.vecfile`)
instead of FAISS. Layouts and their costs: ``docs/vectors.md``.
"""
from __future__ import annotations

import math
import re

import faiss

from engine.errors import InputError

__all__ = [
    "FLAT_FACTORY",
    "DISK_REFINE",
    "REFINE_RE",
    "auto_factory",
    "compressed_factory",
    "split_disk_refine",
    "nlist_for",
    "resolve_factory",
    "check_factory",
    "faiss_version",
    "stores_exactly",
]

FLAT_FACTORY = "Flat"
# vidseek's extension: the float16 refine stage kept in an append-only file (vecfile.py).
DISK_REFINE = ",Refine(SQfp16@disk)"
# "<base>,RFlat" or "<base>,Refine(<refine>)": a factory string with a refine stage.
REFINE_RE = re.compile(r"^(?P<base>.+),(?:(?P<rflat>RFlat)|Refine\((?P<refine>.+)\))$")


def faiss_version() -> str:
    """The FAISS version string recorded in manifests."""
    return str(faiss.__version__)


def auto_factory(dim: int) -> str:
    """The approximate factory template that ``approx_factory="auto"`` uses at ``dim``.

    Chosen by measurement (``benchmarks/bench_vectors.py``): for small dims an IVF
    over raw float vectors is cheap and exact to rebuild; for embedding-sized dims,
    4-bit fast-scan PQ at d/8 sub-quantizers finds candidates and a float16 refine
    stage re-scores ``k * k_factor`` of them exactly enough to keep recall@10 near
    the IVF ceiling. ``{nlist}`` is filled in from the shard's size
    (:func:`nlist_for`).
    """
    if dim <= 128:
        return "IVF{nlist},Flat"
    if dim % 8 == 0:
        return f"IVF{{nlist}},PQ{dim // 8}x4fs,Refine(SQfp16)"
    if dim % 4 == 0:
        return f"IVF{{nlist}},PQ{dim // 4}x4fs,Refine(SQfp16)"
    return "IVF{nlist},SQ8,Refine(SQfp16)"


def compressed_factory(dim: int) -> str:
    """The template for stores too large to keep a float16 refine stage in RAM.

    It is :func:`auto_factory` with the refine stage on disk (``@disk``, see
    :mod:`engine.vectors.vecfile`): RAM holds the fast-scan PQ codes (d/8 bytes)
    and ids (24 bytes), about 1.2 GB for 10M x 1536; the float16 vectors (2*d bytes)
    sit in an append-only file, and each query reads its ``k * k_factor``
    candidates' rows from it. Recall equals the in-RAM layout's; each query pays a
    few hundred small reads. In-RAM lossy refine stages were measured and dropped
    (50k x 1536, ``docs/vectors.md``): ``Refine(PQ512np)`` reached recall@10 0.91 and
    added 134 vectors/s; ``Refine(SQ4)`` 0.93 but needs 8.4 GB at 10M.
    """
    template = auto_factory(dim)
    if not template.endswith(",Refine(SQfp16)"):
        return template  # small dims: IVF-Flat is already lean enough to stay in RAM
    return template[: -len(",Refine(SQfp16)")] + DISK_REFINE


def split_disk_refine(desc: str) -> tuple[str, bool]:
    """(FAISS factory string without a trailing ``DISK_REFINE``, whether it had one).

    ``@disk`` is vidseek's extension of the factory syntax and is only valid as
    ``Refine(SQfp16@disk)`` at the end; anywhere else it raises ``InputError``.
    """
    if desc.endswith(DISK_REFINE):
        base = desc[: -len(DISK_REFINE)]
        disk = True
    else:
        base, disk = desc, False
    if "@disk" in base:
        raise InputError(
            f"factory {desc!r}: '@disk' is only supported as a final {DISK_REFINE.lstrip(',')!r} stage",
            hint=f'e.g. "IVF{{nlist}},PQ192x4fs{DISK_REFINE}"',
        )
    if disk and (not base or base.startswith("Flat") or "Refine(" in base or base.endswith("RFlat")):
        raise InputError(
            f"factory {desc!r}: an on-disk refine stage needs an approximate base index before it",
            hint=f'e.g. "IVF{{nlist}},PQ192x4fs{DISK_REFINE}"',
        )
    return base, disk


def nlist_for(n: int, train_n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4*sqrt(n), at least 39 training points each."""
    want = int(round(4 * math.sqrt(max(n, 1))))
    return max(1, min(want, train_n // 39, 65_536))


def resolve_factory(template: str, dim: int, n: int, train_n: int) -> str:
    """Fill ``{nlist}`` in a factory template (``"auto"`` resolves to :func:`auto_factory`,
    ``"compressed"`` to :func:`compressed_factory`)."""
    if template == "auto":
        template = auto_factory(dim)
    elif template == "compressed":
        template = compressed_factory(dim)
    if "{nlist}" in template:
        return template.replace("{nlist}", str(nlist_for(n, train_n)))
    return template


def check_factory(template: str, dim: int) -> None:
    """Raise ``InputError`` if FAISS cannot build ``template`` at ``dim``."""
    desc, _disk = split_disk_refine(resolve_factory(template, dim, n=10_000, train_n=10_000))
    try:
        faiss.index_factory(dim, desc, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise InputError(
            f"approx_factory {template!r} is not a FAISS factory string FAISS can build at dim {dim}: "
            f"{str(e).splitlines()[-1]}",
            hint='use "auto", "compressed" or a string such as "IVF{nlist},PQ96x4fs,Refine(SQfp16)" or "HNSW32,Flat"',
        ) from e


def stores_exactly(template: str, dim: int) -> bool:
    """Whether every shard of this factory gives its vectors back as added (Flat
    exactly; float16 refine rows, in RAM or on disk, rounded to float16), so that the
    store can be the one copy of them (the catalog then prunes its own; ``engine.index``).

    True for ``"auto"``, ``"compressed"``, factories ending in a ``Refine(SQfp16)``,
    ``Refine(SQfp16@disk)``, ``Refine(Flat)`` or ``RFlat`` stage, and IVF/HNSW over
    ``Flat`` codes without a transform; False for lossy codes (PQ, SQ8, PCA, OPQ ...)."""
    desc = resolve_factory(template, dim, n=10_000, train_n=10_000)
    if desc == FLAT_FACTORY:
        return True
    if desc.endswith(("Refine(SQfp16)", "Refine(SQfp16@disk)", "Refine(Flat)", ",RFlat")):
        return True
    parts = desc.split(",")
    lossy_prefix = ("PCA", "OPQ", "ITQ", "RR", "L2norm")
    return parts[-1] == "Flat" and not any(p.startswith(lossy_prefix) for p in parts[:-1])
