"""Learning from use (query.learn): the feedback store, the click model, the ranker and
its safety gate, team-draft interleaving; no models needed (the service's routes are
in tests/test_learn_api.py)."""
from __future__ import annotations

import multiprocessing
import random
import threading

import numpy as np
import pytest

from engine.errors import InputError
from query.learn.clickmodel import Session, fit_pbm, naive_ctr
from query.learn.config import LearnConfig, load_config
from query.learn.features import N_FEATURES, QueryCandidates, apply_linear
from query.learn.interleave import Tally, credit, team_draft
from query.learn.ranker import DEFAULT_VERSION, LinearRanker, ModelStore
from query.learn.store import Event, FeedbackStore
from query.learn.train import JudgedQuery, TrainingQuery, fit_linear, gate, judged_metrics


# -- the feedback store ---------------------------------------------------------------------
def _post_many(path: str, worker: int, n: int) -> None:
    store = FeedbackStore(path)
    for i in range(n):
        ev = Event("click", "s1", position=i % 10, event_id=f"w{worker}-e{i:04d}")
        store.record("t", ev)
        store.record("t", ev)  # a client's retry of the same post
    store.close()


def test_events_stored_exactly_once_under_concurrent_posts(tmp_path):
    path = str(tmp_path / "feedback.sqlite")
    store = FeedbackStore(path)
    store.record_impression("t", "s1", "red boat", [f"v{i}" for i in range(10)], ranker=DEFAULT_VERSION)
    # Threads of this process and two other processes, each posting every event twice.
    threads = [threading.Thread(target=_post_many, args=(path, w, 60)) for w in range(6)]
    procs = [multiprocessing.get_context("spawn").Process(target=_post_many, args=(path, w, 60)) for w in (6, 7)]
    for t in [*threads, *procs]:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    ids = [e["event_id"] for e in store.events("t") if e["kind"] == "click"]
    assert len(ids) == 8 * 60 == len(set(ids))
    assert set(ids) == {f"w{w}-e{i:04d}" for w in range(8) for i in range(60)}
    assert store.count("t") == {"impression": 1, "click": 480}
    store.close()


def test_event_validation_names_the_problem(tmp_path):
    with pytest.raises(InputError, match="unknown feedback event kind"):
        Event("like", "s1", position=0)
    with pytest.raises(InputError, match="position"):
        Event("click", "s1")
    with pytest.raises(InputError, match="dwell"):
        Event("dwell", "s1", position=0, value=-3.0)
    with pytest.raises(InputError, match="search_id"):
        Event("click", "", position=0)


def test_user_ids_are_hashed_unless_configured(tmp_path):
    store = FeedbackStore(tmp_path / "a.sqlite")
    store.record("t", Event("click", "s", position=0, user="alice@example.com"))
    store.record("t", Event("click", "s", position=1, user="alice@example.com"))
    users = [e["user"] for e in store.events()]
    assert users[0] == users[1] and "alice" not in users[0] and len(users[0]) == 32
    raw = FeedbackStore(tmp_path / "b.sqlite", LearnConfig(store_user_ids=True))
    raw.record("t", Event("click", "s", position=0, user="alice@example.com"))
    assert [e["user"] for e in raw.events()] == ["alice@example.com"]


def test_retention_drops_old_events_and_caps_each_tenant(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite", LearnConfig(retention_days=1, max_events_per_tenant=3))
    store.record("t", Event("click", "s", position=0), at=0.0)  # long ago
    for i in range(5):
        store.record("t", Event("click", "s", position=i))
    store.record("u", Event("click", "s", position=0))
    assert store.purge() == 3  # one too old, two beyond t's cap of 3
    assert store.count("t") == {"click": 3} and store.count("u") == {"click": 1}
    assert [e["position"] for e in store.events("t")] == [2, 3, 4]  # the newest kept


def test_sessions_join_impressions_with_clicks_plays_and_rejections(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.record_impression("t", "s", "Red  Boat", ["a", "b", "c", "d"], ranker="default")
    store.record("t", Event("click", "s", position=0))
    store.record("t", Event("not_relevant", "s", position=0))  # clicked, then rejected
    store.record("t", Event("play", "s", position=2))
    store.record("t", Event("dwell", "s", position=3, value=30.0))
    store.record("t", Event("dwell", "s", position=1, value=2.0))  # too short to count
    (s,) = store.sessions()
    assert s.query == ("t", "red boat") and s.docs == ("a", "b", "c", "d")
    assert s.clicks == (False, False, True, True)


# -- the click model ------------------------------------------------------------------------
def _pbm_sessions(n: int, seed: int, randomise: float = 0.1):
    rng = np.random.default_rng(seed)
    theta = 1.0 / np.arange(1, 11)
    gamma = {(q, d): float(rng.uniform(0.05, 0.95)) for q in range(20) for d in range(10)}
    order = {q: list(rng.permutation(10)) for q in range(20)}
    out = []
    for _ in range(n):
        q = int(rng.integers(20))
        shown = list(order[q])
        if rng.random() < randomise:  # the service's randomised share: one adjacent swap
            j = int(rng.integers(9))
            shown[j], shown[j + 1] = shown[j + 1], shown[j]
        clicks = tuple(bool(rng.random() < theta[k] * gamma[(q, d)]) for k, d in enumerate(shown))
        out.append(Session(q, tuple(shown), clicks))
    return out, gamma, theta


def test_click_model_recovers_known_relevance_from_simulated_clicks():
    sessions, gamma, theta = _pbm_sessions(60_000, seed=1, randomise=0.3)
    rel = fit_pbm(sessions)
    err = np.mean([abs(rel.labels[k] - v) for k, v in gamma.items()])
    naive = naive_ctr(sessions)
    err_naive = np.mean([abs(naive.labels[k] - v) for k, v in gamma.items()])
    assert err < 0.05, err
    assert err_naive > 3 * err  # clicks over impressions are biased by position
    assert np.allclose(rel.theta[:5], theta[:5], atol=0.05), rel.theta
    # The order that matters: within each query, pairs of results the truth orders by 0.2 or more.
    pairs = right = 0
    for q in range(20):
        for a in range(10):
            for b in range(10):
                if gamma[(q, a)] > gamma[(q, b)] + 0.2:
                    pairs += 1
                    right += rel.labels[(q, a)] > rel.labels[(q, b)]
    assert right / pairs > 0.97


def test_click_model_input_errors():
    with pytest.raises(InputError):
        Session("q", ("a", "b"), (True,))
    assert fit_pbm([]).labels == {}


# -- ranker, gate ------------------------------------------------------------------------------
def _synthetic_queries(n: int, seed: int, kinds=("visual", "speech")):
    """Queries whose relevant clip has a high feature 0 but a middling default score."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n):
        m = 12
        base = np.sort(rng.uniform(0.3, 0.9, m))[::-1].copy()
        x = rng.normal(0, 0.1, (m, N_FEATURES))
        rel = int(rng.integers(2, 8))
        x[:, 0] = rng.uniform(0, 0.3, m)
        x[rel, 0] = 0.9
        clips = [f"q{q}c{i}" for i in range(m)]
        qc = QueryCandidates(f"q{q}", "visual", np.arange(m, dtype=np.int64), clips, base, x)
        out.append(JudgedQuery(qc, frozenset({clips[rel]}), kinds[q % len(kinds)]))
    return out


def test_zero_model_is_the_default_ranking_and_only_the_top_moves():
    (jq,) = _synthetic_queries(1, seed=3)
    qc = jq.cands
    assert qc.ranking(np.zeros(N_FEATURES)) == qc.ranking(None)
    w = np.zeros(N_FEATURES)
    w[0] = 5.0
    moved = qc.ranking(w)
    assert moved[0] == next(iter(jq.relevant))
    # With a depth of 3, the default's 4th..12th clips keep their order below the top 3.
    s = apply_linear(qc.base, qc.x, qc.video_keys, w, depth=3)
    order = sorted(range(12), key=lambda i: -s[i])
    assert sorted(order[:3]) == [0, 1, 2] and order[3:] == list(range(3, 12))


def test_fit_linear_learns_what_the_labels_say():
    train = _synthetic_queries(40, seed=4)
    tq = []
    for j in train:
        rows = j.cands.video_rows(None)
        r = np.array([rows[c] for c in j.cands.clips[:10]])
        labels = np.array([1.0 if c in j.relevant else 0.0 for c in j.cands.clips[:10]])
        tq.append(TrainingQuery(j.cands.x[r], j.cands.base[r], labels))
    w = fit_linear(tq, l2=0.1)
    assert w[0] > 0 and abs(w[0]) == max(abs(w))
    test = _synthetic_queries(40, seed=5)
    assert judged_metrics(w, test)["overall"]["MRR"] > judged_metrics(None, test)["overall"]["MRR"] + 0.2
    assert not fit_linear([], l2=1.0).any()
    with pytest.raises(InputError):
        fit_linear(tq, l2=0)


def test_safety_gate_refuses_a_worse_model_and_passes_a_better_one():
    judged = _synthetic_queries(30, seed=6)
    good, bad = np.zeros(N_FEATURES), np.zeros(N_FEATURES)
    good[0], bad[0] = 2.0, -2.0
    refused = gate(bad, None, judged=judged)
    assert not refused.ok and any("MRR" in r for r in refused.reasons)
    assert gate(good, None, judged=judged).ok
    assert not gate(good, good, judged=judged).ok  # no better than what is live
    assert not gate(good, None).ok  # nothing to check against


def test_safety_gate_refuses_a_model_worse_on_one_kind():
    judged = _synthetic_queries(30, seed=7)
    w = np.zeros(N_FEATURES)
    w[0] = 2.0
    # One kind whose relevant clips have a LOW feature 0: w helps overall, hurts that kind.
    tricky = []
    for j in _synthetic_queries(4, seed=8, kinds=("ocr",)):
        x = j.cands.x.copy()
        (c,) = j.relevant
        i = j.cands.clips.index(c)
        x[:, 0] = 0.9
        x[i, 0] = 0.0
        qc = QueryCandidates(j.cands.query, "ocr", j.cands.video_keys, j.cands.clips, j.cands.base, x)
        tricky.append(JudgedQuery(qc, j.relevant, "ocr"))
    m = judged_metrics(w, judged + tricky)
    assert m["overall"]["MRR"] > judged_metrics(None, judged + tricky)["overall"]["MRR"]
    verdict = gate(w, None, judged=judged + tricky)
    assert not verdict.ok and any(r.startswith("judged ocr MRR") for r in verdict.reasons)


def test_model_store_promotes_freezes_and_serves(tmp_path):
    from query.learn.serve import LiveRanking

    store = ModelStore(tmp_path)
    assert store.current() is None and store.current_version() == DEFAULT_VERSION
    w = np.zeros(N_FEATURES)
    w[3] = 0.5
    model = LinearRanker.from_vector(w)
    assert LinearRanker.from_vector(w).version == model.version  # named by its weights
    store.save(model)
    live = LiveRanking(tmp_path)
    live.refresh(force=True)
    assert live.version == DEFAULT_VERSION
    store.promote(model.version, "test")
    live.refresh(force=True)
    assert live.version == model.version and np.allclose(live.model.vector(), w)
    store.freeze()
    with pytest.raises(InputError, match="frozen"):
        store.promote(DEFAULT_VERSION, "rollback")
    store.freeze(False)
    store.promote(DEFAULT_VERSION, "rollback")
    live.refresh(force=True)
    assert live.version == DEFAULT_VERSION
    with pytest.raises(InputError):
        LinearRanker("x", {"no_such_feature": 1.0})


def test_learn_config_refuses_unknown_keys_and_bad_values(tmp_path):
    (tmp_path / "learn").mkdir()
    (tmp_path / "learn" / "config.toml").write_text("randomise_share = 0.1\nmin_sessions = 5\n")
    assert load_config(tmp_path).min_sessions == 5
    (tmp_path / "learn" / "config.toml").write_text("randomize_share = 0.1\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_config(tmp_path)
    with pytest.raises(InputError):
        LearnConfig(randomise_share=1.5)


# -- interleaving ---------------------------------------------------------------------------
def test_team_draft_is_balanced_and_complete():
    rng = random.Random(0)
    a, b = list("abcdefgh"), list("hgfedcba")
    for _ in range(50):
        il = team_draft(a, b, 8, rng)
        assert sorted(il.docs) == sorted(a) and len(set(il.docs)) == 8
        for n in range(1, 9):
            assert abs(il.teams[:n].count("A") - il.teams[:n].count("B")) <= 1
    assert credit(("A", "B", "A"), [0, 2]) == "A" and credit(("A", "B"), [0, 1]) is None
    assert credit(("A", "B"), []) is None


def test_interleaving_credits_the_better_ranker_on_a_simulated_stream():
    rng = np.random.default_rng(2)
    prng = random.Random(2)
    tally = Tally()
    for _ in range(3000):
        docs = [f"d{i}" for i in range(20)]
        relevant = set(rng.choice(docs, 3, replace=False).tolist())
        good = sorted(docs, key=lambda d: (d not in relevant, rng.random()))  # relevant first
        worse = list(rng.permutation(docs))
        il = team_draft(worse, good, 10, prng)  # the better ranker is team B
        clicks = [k for k, d in enumerate(il.docs)
                  if rng.random() < 1.0 / (k + 1) and rng.random() < (0.9 if d in relevant else 0.1)]
        tally.add(credit(il.teams, clicks))
    assert tally.b > 3 * tally.a
    assert tally.preference_b > 0.5


# -- click memory --------------------------------------------------------------------------
def test_click_memory_lifts_what_users_chose_for_the_same_need_only():
    from query.learn.memory import ClickMemory
    from query.learn.train import Scorer

    rng = np.random.default_rng(9)
    v = rng.normal(size=16)
    v /= np.linalg.norm(v)
    other = rng.normal(size=16)
    other -= (other @ v) * v
    other /= np.linalg.norm(other)  # orthogonal: another need
    near = v + 0.2 * other
    near /= np.linalg.norm(near)  # a rephrasing (cosine ~0.98)
    mem = ClickMemory.build({("t", "red boat"): (v, {"a": 0.1, "b": 0.9, "c": 0.2}),
                             ("u", "red boat"): (v, {"a": 0.9, "b": 0.0})})
    p = mem.prior(near, "t")
    assert p["b"] > 0 and "a" not in p and "c" not in p  # lifted; the others left where they were
    assert mem.prior(other, "t") == {} and mem.prior(None, "t") == {}
    assert mem.prior(near, "u")["a"] > 0  # each tenant's clicks stay its own
    qc = QueryCandidates("red boat!", "visual", np.arange(3, dtype=np.int64), ["a", "b", "c"],
                         np.array([0.9, 0.5, 0.4]), np.zeros((3, N_FEATURES)), qvec=near)
    assert qc.ranking(None) == ["a", "b", "c"]
    assert Scorer(None, mem, 1.0).ranking(qc, 3, "t")[0] == "b"
    far = QueryCandidates(qc.query, qc.label, qc.video_keys, qc.clips, qc.base, qc.x, qvec=other)
    assert Scorer(None, mem, 1.0).ranking(far, 3, "t") == ["a", "b", "c"]


def test_model_with_memory_round_trips(tmp_path):
    from query.learn.memory import ClickMemory

    v = np.ones(8, dtype=np.float32) / np.sqrt(8)
    mem = ClickMemory.build({("t", "q"): (v, {"a": 0.8, "b": 0.1})})
    model = LinearRanker.from_vector(np.zeros(N_FEATURES), beta=0.3, memory=mem)
    assert model.version != LinearRanker.from_vector(np.zeros(N_FEATURES)).version
    store = ModelStore(tmp_path)
    store.save(model)
    back = store.load(model.version)
    assert back.beta == 0.3 and back.memory.texts == ["q"] and back.memory.prior(v, "t") == mem.prior(v, "t")


def test_safety_gate_sees_through_a_memory_that_hides_a_worse_linear_part():
    from query.learn.memory import ClickMemory
    from query.learn.train import Scorer

    rng = np.random.default_rng(10)
    judged, entries = [], {}
    for j in _synthetic_queries(30, seed=11):
        v = rng.normal(size=32)
        v /= np.linalg.norm(v)
        qc = j.cands
        judged.append(JudgedQuery(QueryCandidates(qc.query, qc.label, qc.video_keys, qc.clips, qc.base, qc.x, v),
                                  j.relevant, j.kind))
        entries[("t", qc.query)] = (v, {c: 1.0 if c in j.relevant else 0.0 for c in qc.clips})
    mem = ClickMemory.build(entries)  # users asked every judged need and found its answer
    bad = np.zeros(N_FEATURES)
    bad[0] = -2.0
    with_memory = judged_metrics(Scorer(bad, mem, 3.0), judged)["overall"]["MRR"]
    assert with_memory > judged_metrics(None, judged)["overall"]["MRR"]
    verdict = gate(Scorer(bad, mem, 3.0), None, judged=judged)
    assert not verdict.ok and any(r.startswith("judged without memory") for r in verdict.reasons)
    assert gate(Scorer(None, mem, 3.0), None, judged=judged).ok  # the memory alone may go live


def test_service_schedule_retrains_and_stops(tmp_path):
    import time

    from query.learn.service import LearningService

    svc = LearningService(tmp_path, LearnConfig(retrain_every_s=0.05, min_sessions=10))
    svc.start(lambda: None)  # with too few sessions a retrain never needs the searcher
    assert svc.scheduled
    for _ in range(600):  # poll with a cap: not a timing assertion
        if svc.last_report is not None:
            break
        time.sleep(0.05)
    svc.close()
    assert svc.last_report["status"] == "too_few_sessions"
    assert not svc.scheduled
    svc.models.freeze()
    assert svc.retrain(None)["status"] == "frozen"
