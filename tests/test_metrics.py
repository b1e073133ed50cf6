"""Retrieval metrics: hand-computed cases, duplicates, ties, empty ground truth, IoU edges."""
from __future__ import annotations

import math

import pytest

from benchmarks.metrics import (
    RankedMoment,
    Relevant,
    dedupe,
    first_relevant_rank,
    mean_defined,
    ndcg_at_k,
    r1_at_iou,
    recall_at_k,
    reciprocal_rank,
    temporal_iou,
    top1_score,
)
from engine.errors import InputError


# -- dedupe / ranks -----------------------------------------------------------------------
def test_dedupe_keeps_first_occurrence_in_order() -> None:
    assert dedupe(["c2", "c1", "c2", "c3", "c1"]) == ["c2", "c1", "c3"]


def test_first_relevant_rank_counts_distinct_clips() -> None:
    # c1 appears twice before c9: the relevant clip is the 2nd distinct clip, not the 3rd hit.
    assert first_relevant_rank(["c1", "c1", "c9"], {"c9"}) == 2
    assert first_relevant_rank(["c1", "c2"], {"c9"}) is None


# -- recall ----------------------------------------------------------------------------------
def test_recall_hand_computed() -> None:
    ranked = ["a", "b", "c", "d", "e"]
    rel = {"b", "e", "z"}  # z is never retrieved
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, rel, 5) == pytest.approx(2 / 3)


def test_recall_k_larger_than_list() -> None:
    assert recall_at_k(["a", "b"], {"b"}, 10) == 1.0
    assert recall_at_k([], {"b"}, 10) == 0.0


def test_recall_duplicates_do_not_push_clips_out_of_top_k() -> None:
    # Raw top-2 is [a, a]; deduped top-2 is [a, b], so b counts at k=2.
    assert recall_at_k(["a", "a", "b"], {"b"}, 2) == 1.0
    # A relevant clip seen twice counts once.
    assert recall_at_k(["b", "b", "c"], {"b", "c"}, 3) == 1.0


def test_recall_ties_follow_given_order() -> None:
    # The metrics never look at scores: equal-score hits rank as listed.
    assert recall_at_k(["x", "y"], {"y"}, 1) == 0.0
    assert recall_at_k(["y", "x"], {"y"}, 1) == 1.0


def test_empty_ground_truth_is_undefined_not_zero() -> None:
    assert recall_at_k(["a"], set(), 5) is None
    assert reciprocal_rank(["a"], set()) is None
    assert ndcg_at_k(["a"], [], 10) is None


def test_bad_k_is_named_error() -> None:
    with pytest.raises(InputError, match="k must be at least 1"):
        recall_at_k(["a"], {"a"}, 0)
    with pytest.raises(InputError):
        ndcg_at_k(["a"], {"a"}, -1)
    with pytest.raises(InputError):
        reciprocal_rank(["a"], {"a"}, k=0)


# -- reciprocal rank -----------------------------------------------------------------------
def test_reciprocal_rank_hand_computed() -> None:
    assert reciprocal_rank(["a", "b", "c"], {"c", "b"}) == 0.5
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["a", "b", "c"], {"z"}) == 0.0
    assert reciprocal_rank(["a", "a", "a", "b"], {"b"}) == 0.5  # deduped rank 2
    assert reciprocal_rank(["a", "b", "c"], {"c"}, k=2) == 0.0
    assert reciprocal_rank(["a", "b", "c"], {"c"}, k=3) == pytest.approx(1 / 3)


# -- nDCG ----------------------------------------------------------------------------------
def test_ndcg_hand_computed() -> None:
    # Relevant at ranks 2 and 4, two relevant clips: DCG = 1/log2(3) + 1/log2(5),
    # IDCG = 1/log2(2) + 1/log2(3).
    got = ndcg_at_k(["a", "r1", "b", "r2"], {"r1", "r2"}, 10)
    want = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert got == pytest.approx(want)
    assert got == pytest.approx(0.6509, abs=1e-4)


def test_ndcg_perfect_and_ideal_capped_at_k() -> None:
    assert ndcg_at_k(["r1", "r2", "x"], {"r1", "r2"}, 10) == pytest.approx(1.0)
    # Three relevant clips, k=1: the ideal list has one gain, and r1 first is perfect.
    assert ndcg_at_k(["r1", "x"], {"r1", "r2", "r3"}, 1) == pytest.approx(1.0)
    # Relevant clip only beyond k contributes nothing.
    assert ndcg_at_k(["x", "y", "r1"], {"r1"}, 2) == 0.0


def test_ndcg_duplicates_count_once() -> None:
    # Without dedupe, r1 twice would give DCG above the ideal (nDCG > 1).
    assert ndcg_at_k(["r1", "r1", "x"], {"r1"}, 10) == pytest.approx(1.0)
    # [a, a, r1] dedupes to [a, r1]: r1 at rank 2.
    assert ndcg_at_k(["a", "a", "r1"], {"r1"}, 10) == pytest.approx(1 / math.log2(3))


# -- temporal IoU --------------------------------------------------------------------------
def test_iou_identical_contained_partial() -> None:
    assert temporal_iou(2.0, 6.0, 2.0, 6.0) == 1.0
    assert temporal_iou(0.0, 10.0, 2.0, 4.0) == pytest.approx(0.2)  # contained: 2 / 10
    assert temporal_iou(2.0, 4.0, 0.0, 10.0) == pytest.approx(0.2)  # symmetric
    assert temporal_iou(0.0, 4.0, 2.0, 6.0) == pytest.approx(2 / 6)  # partial overlap


def test_iou_touching_and_disjoint_are_zero() -> None:
    assert temporal_iou(0.0, 2.0, 2.0, 5.0) == 0.0
    assert temporal_iou(0.0, 1.0, 3.0, 5.0) == 0.0


def test_iou_zero_length_intervals() -> None:
    assert temporal_iou(3.0, 3.0, 3.0, 3.0) == 1.0
    assert temporal_iou(3.0, 3.0, 4.0, 4.0) == 0.0
    assert temporal_iou(3.0, 3.0, 0.0, 10.0) == 0.0


def test_iou_rejects_reversed_or_nonfinite() -> None:
    with pytest.raises(InputError, match="ends before it starts"):
        temporal_iou(5.0, 1.0, 0.0, 2.0)
    with pytest.raises(InputError, match="non-finite"):
        temporal_iou(0.0, float("nan"), 0.0, 2.0)


# -- R1@IoU --------------------------------------------------------------------------------
def test_r1_at_iou_hit_and_misses() -> None:
    rel = [Relevant("c1", 4.0, 8.0)]
    assert r1_at_iou([RankedMoment("c1", 4.0, 8.0)], rel) == 1.0
    # Right clip, IoU = 2/6 < 0.5.
    assert r1_at_iou([RankedMoment("c1", 6.0, 10.0)], rel) == 0.0
    # Exactly at the threshold counts: [4, 6] vs [4, 8] is 2/4 = 0.5.
    assert r1_at_iou([RankedMoment("c1", 4.0, 6.0)], rel, threshold=0.5) == 1.0
    # Perfect window on the wrong clip.
    assert r1_at_iou([RankedMoment("c2", 4.0, 8.0)], rel) == 0.0
    # Only the top hit matters.
    assert r1_at_iou([RankedMoment("c2", 0.0, 1.0), RankedMoment("c1", 4.0, 8.0)], rel) == 0.0
    assert r1_at_iou([], rel) == 0.0


def test_r1_at_iou_not_applicable_without_windows() -> None:
    assert r1_at_iou([RankedMoment("c1", 0.0, 2.0)], [Relevant("c1")]) is None
    assert r1_at_iou([RankedMoment("c1", 0.0, 2.0)], []) is None


def test_r1_at_iou_several_windows_and_windowless_relevant() -> None:
    rel = [Relevant("c5", 20.0, 40.0), Relevant("c5", 52.0, 58.0), Relevant("c9")]
    assert r1_at_iou([RankedMoment("c5", 52.0, 57.0)], rel) == 1.0  # second window, IoU 5/6
    # Relevant clip without a window: nothing to compare, scores 0 (documented lower bound).
    assert r1_at_iou([RankedMoment("c9", 0.0, 3.0)], rel) == 0.0


def test_r1_threshold_validated() -> None:
    with pytest.raises(InputError, match="threshold"):
        r1_at_iou([], [Relevant("c1", 0.0, 1.0)], threshold=0.0)


def test_relevant_validates_windows() -> None:
    with pytest.raises(InputError, match="only one of start/end"):
        Relevant("c1", start=1.0)
    with pytest.raises(InputError, match="before it starts"):
        Relevant("c1", 5.0, 2.0)
    assert Relevant("c1", 1.0, 2.0).has_window and not Relevant("c1").has_window


# -- negatives / averages ------------------------------------------------------------------
def test_top1_score_and_mean_defined() -> None:
    assert top1_score([RankedMoment("c1", 0, 1, 0.8), RankedMoment("c2", 0, 1, 0.9)]) == 0.8
    assert top1_score([]) is None
    assert mean_defined([1.0, None, 0.0]) == 0.5
    assert mean_defined([None, None]) is None
    assert mean_defined([]) is None


# -- more hand-computed cases (benchmark suites) ------------------------------------------
def test_ndcg_at_10_three_relevant_hand_computed() -> None:
    # Relevant at distinct ranks 1 and 3 (a duplicate of rank 1 in between is dropped),
    # three relevant clips: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/2.
    got = ndcg_at_k(["r1", "r1", "x", "r2", "y"], {"r1", "r2", "r3"}, 10)
    assert got == pytest.approx(1.5 / (1 + 1 / math.log2(3) + 0.5))


def test_equal_scores_keep_the_returned_order_for_every_metric() -> None:
    # Two hits with the same score: the metrics read list order, never scores.
    hits = [RankedMoment("x", 0.0, 1.0, 0.5), RankedMoment("r", 0.0, 1.0, 0.5)]
    ids = [h.clip for h in hits]
    assert reciprocal_rank(ids, {"r"}) == 0.5
    assert recall_at_k(ids, {"r"}, 1) == 0.0
    assert ndcg_at_k(ids, {"r"}, 10) == pytest.approx(1 / math.log2(3))
    assert r1_at_iou(hits, [Relevant("r", 0.0, 1.0)]) == 0.0  # the tied hit ranked second


def test_empty_result_list_scores_zero_not_none() -> None:
    # A positive query that gets nothing back is a miss (0), unlike a negative (None).
    assert recall_at_k([], {"a"}, 10) == 0.0
    assert reciprocal_rank([], {"a"}) == 0.0
    assert ndcg_at_k([], {"a"}, 10) == 0.0
    assert r1_at_iou([], [Relevant("a")]) is None  # no window: not applicable


def test_mrr_over_a_query_set_skips_negatives() -> None:
    # Ranks 1, 2 and a miss, plus one negative query: MRR = (1 + 1/2 + 0) / 3.
    rr = [reciprocal_rank(["a"], {"a"}), reciprocal_rank(["x", "b"], {"b"}),
          reciprocal_rank(["x"], {"c"}), reciprocal_rank(["x"], set())]
    assert rr[-1] is None
    assert mean_defined(rr) == pytest.approx(0.5)
