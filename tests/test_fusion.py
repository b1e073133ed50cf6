"""Fusion functions: hand-computed golden runs, invariants, input validation, registry."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError, UnknownNameError
from query.fusion import (
    FUSION_METHODS,
    FusedHit,
    convex_combination,
    get_fusion_method,
    list_fusion_methods,
    normalise,
    reciprocal_rank_fusion,
    rrf_top_ids,
)

GOLDEN = sorted((Path(__file__).parent / "golden").glob("fusion_*.json"))


def _run(spec: dict[str, Any]) -> Any:
    if "pairs" in spec:
        return [tuple(p) for p in spec["pairs"]]
    return dict(spec["scores"])


def _golden_cases() -> list[Any]:
    cases = []
    for path in GOLDEN:
        for i, case in enumerate(json.loads(path.read_text())["cases"]):
            cases.append(pytest.param(case, id=f"{path.stem}[{i}]"))
    return cases


def test_golden_files_exist() -> None:
    assert len(GOLDEN) >= 6, GOLDEN


@pytest.mark.parametrize("case", _golden_cases())
def test_golden(case: dict[str, Any]) -> None:
    if "named_runs" in case:
        runs: Any = {name: _run(spec) for name, spec in case["named_runs"].items()}
    else:
        runs = [_run(spec) for spec in case["runs"]]
    method = get_fusion_method(case["method"])
    got = method(runs, case.get("weights"), **case["params"])
    expected = case["expected"]
    assert [h.doc_id for h in got] == [e[0] for e in expected]
    for hit, (_, score) in zip(got, expected):
        assert math.isclose(hit.score, score, rel_tol=1e-12, abs_tol=1e-15), (hit, score)


def test_rrf_function_matches_registry_and_is_a_run() -> None:
    runs = [[("a", 3.0), ("b", 1.0)], {"b": 0.5, "c": 0.1}]
    direct = reciprocal_rank_fusion(runs, k=60)
    assert direct == FUSION_METHODS["rrf"](runs)
    assert all(isinstance(h, FusedHit) for h in direct)
    # A fused list is itself a valid run and fuses again.
    again = reciprocal_rank_fusion([direct], k=0)
    assert [h.doc_id for h in again] == [h.doc_id for h in direct]
    assert again[0].score == 1.0


def test_rrf_uses_given_order_not_scores_for_lists() -> None:
    # Rank is the position in a list run, even if scores disagree.
    got = reciprocal_rank_fusion([[("low", 0.1), ("high", 0.9)]], k=0)
    assert got == [FusedHit("low", 1.0), FusedHit("high", 0.5)]


def test_numpy_ids_and_scores_are_accepted() -> None:
    ids = np.array([7, 3], dtype=np.int64)
    scores = np.array([0.25, 0.75], dtype=np.float32)
    got = convex_combination([list(zip(ids, scores))], normalisation="minmax")
    assert got == [FusedHit(3, 1.0), FusedHit(7, 0.0)]
    assert all(type(h.doc_id) is int for h in got)


def test_int_ids_sort_before_str_ids_on_ties() -> None:
    got = reciprocal_rank_fusion([[("a", 1.0)], [(5, 1.0)]])
    assert [h.doc_id for h in got] == [5, "a"]


def test_zero_weights_everywhere_gives_nothing() -> None:
    assert reciprocal_rank_fusion([[("a", 1.0)]], weights=[0.0]) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reciprocal_rank_fusion([[("a", 1.0), ("a", 0.5)]]), "twice"),
        (lambda: reciprocal_rank_fusion([[("a", float("nan"))]]), "score"),
        (lambda: convex_combination([{"a": float("inf")}]), "score"),
        (lambda: reciprocal_rank_fusion([[("a", "high")]]), "score"),
        (lambda: reciprocal_rank_fusion([[(1.5, 1.0)]]), "doc id"),
        (lambda: reciprocal_rank_fusion([[(None, 1.0)]]), "doc id"),
        (lambda: reciprocal_rank_fusion([["abc"]]), "pair"),
        (lambda: reciprocal_rank_fusion([5]), "not a run"),
        (lambda: reciprocal_rank_fusion("ab"), "runs is a str"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], weights=[1.0, 2.0]), "2 weights for 1"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], weights=[-1.0]), "weight"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], weights=[math.nan]), "weight"),
        (lambda: reciprocal_rank_fusion({"v": [("a", 1.0)]}, weights={"s": 1.0}), "'v'"),
        (lambda: reciprocal_rank_fusion({"v": [("a", 1.0)]}, weights=[1.0]), "mapping"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], weights={"0": 1.0}), "list"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], k=-1), "k=-1"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], depth=0), "depth=0"),
        (lambda: reciprocal_rank_fusion([[("a", 1.0)]], top=-2), "top=-2"),
    ],
)
def test_bad_input_raises_input_error(call: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


def test_unknown_normalisation_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        convex_combination([[("a", 1.0)]], normalisation="l2")
    assert info.value.valid == ["minmax", "none", "zscore"]


def test_registry_lists_names_and_rejects_unknown() -> None:
    assert list_fusion_methods() == ["convex", "rrf"]
    with pytest.raises(UnknownNameError, match="Supported: \\['convex', 'rrf'\\]"):
        get_fusion_method("combsum")
    with pytest.raises(UnknownNameError):
        get_fusion_method(["rrf"])  # type: ignore[arg-type]


def test_normalise_guards_zero_spread() -> None:
    assert normalise([2.0, 2.0, 2.0], "minmax") == [0.5, 0.5, 0.5]
    assert normalise([0.1] * 3, "zscore") == [0.0, 0.0, 0.0]
    assert normalise([4.0], "zscore") == [0.0]
    assert normalise([], "minmax") == []
    assert normalise([3.0, 1.0], "none") == [3.0, 1.0]
    assert normalise([3.0, 1.0, 2.0], "minmax") == [1.0, 0.0, 0.5]


# -- invariants over random runs ------------------------------------------------------

_ids = st.one_of(st.integers(0, 30), st.sampled_from(list("abcdefghij")))
_score = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_run_st = st.dictionaries(_ids, _score, max_size=12)
_runs_st = st.lists(_run_st, max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    runs=_runs_st,
    method=st.sampled_from(["rrf", "convex"]),
    norm=st.sampled_from(["minmax", "zscore", "none"]),
)
def test_fusion_invariants(runs: list[dict[Any, float]], method: str, norm: str) -> None:
    params = {"normalisation": norm} if method == "convex" else {}
    fuse = get_fusion_method(method)
    got = fuse(runs, **params)
    # Every retrieved doc appears once, scores are finite and sorted, ties by id.
    expected_ids = {d for run in runs for d in run}
    assert sorted(map(str, (h.doc_id for h in got))) == sorted(map(str, expected_ids))
    assert all(math.isfinite(h.score) for h in got)
    keys = [(-h.score, (0, h.doc_id) if isinstance(h.doc_id, int) else (1, h.doc_id)) for h in got]
    assert keys == sorted(keys)
    # The order of the runs does not matter (fsum makes the totals exact).
    assert fuse(list(reversed(runs)), **params) == got
    # top cuts a prefix.
    assert fuse(runs, top=3, **params) == got[:3]
    if method == "convex" and norm == "minmax" and runs:
        assert all(-1e-12 <= h.score <= len(runs) + 1e-12 for h in got)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), unique=True, max_size=25), min_size=1, max_size=6),
       st.integers(1, 50))
def test_rrf_top_ids_matches_validated_rrf(id_lists, top):
    runs = [[(i, 1.0 - r / 100) for r, i in enumerate(ids)] for ids in id_lists]
    want = [h.doc_id for h in reciprocal_rank_fusion(runs, k=60, top=top)]
    assert rrf_top_ids(runs, k=60, top=top) == want
