"""Cover bandits: convergence on seeded simulated streams, the quality prior, and the
catalog persistence of variants, impressions and clicks (restart, concurrency,
cascade on delete)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.catalog import Catalog, NewVideo
from engine.catalog.schema import SCHEMA_VERSION
from engine.covers import (
    ArmState,
    BestQuality,
    CoverStore,
    LinUCB,
    NewCoverVariant,
    RandomPolicy,
    ThompsonSampling,
    context_features,
    make_policy,
    update_arm,
)
from engine.errors import InputError, NotFoundError, UnknownNameError


def test_thompson_converges_to_the_clear_best_arm():
    rng = np.random.default_rng(7)
    ctr = [0.04, 0.08, 0.25, 0.06]
    arms = [ArmState(quality=0.5) for _ in ctr]
    pol = ThompsonSampling()
    picks = []
    for _ in range(3000):
        c = pol.choose(arms, None, rng)
        assert 0.0 < c.propensity <= 1.0
        update_arm(arms[c.arm], None, float(rng.random() < ctr[c.arm]))
        picks.append(c.arm)
    assert np.mean(np.array(picks[-1000:]) == 2) > 0.85
    assert arms[2].impressions > sum(a.impressions for i, a in enumerate(arms) if i != 2)


def test_quality_prior_favours_the_better_looking_cover_before_any_click():
    rng = np.random.default_rng(1)
    arms = [ArmState(quality=0.1), ArmState(quality=0.9)]
    picks = [ThompsonSampling().choose(arms, None, rng).arm for _ in range(2000)]
    assert np.mean(picks) > 0.6
    assert BestQuality().choose(arms, None, rng).arm == 1


def test_linucb_learns_which_audience_clicks_which_cover():
    """Two audiences, two covers whose content matches one audience each: a clear
    best arm per context, which the contextual policy finds and Thompson cannot."""
    rng = np.random.default_rng(11)
    d = 16
    e = np.linalg.qr(rng.normal(size=(d, d)))[0][:2]  # two orthogonal cover embeddings
    audiences = [e[0] * 0.8 + rng.normal(size=d) * 0.05, e[1] * 0.8 + rng.normal(size=d) * 0.05]
    ctr = np.array([[0.30, 0.05], [0.05, 0.30]])  # audience x cover
    arms = [ArmState(quality=0.5) for _ in range(2)]
    pol = LinUCB(alpha=0.5)
    correct = []
    for i in range(3000):
        who = int(rng.integers(2))
        u = audiences[who] + rng.normal(size=d) * 0.05
        x = context_features(u, e)
        c = pol.choose(arms, x, rng)
        update_arm(arms[c.arm], x, float(rng.random() < ctr[who, c.arm]))
        if i >= 2000:
            correct.append(c.arm == who)
    assert np.mean(correct) > 0.85
    assert pol.choose(arms, None, rng).policy == "thompson"  # no context: the fallback


def test_policy_registry_and_errors():
    assert isinstance(make_policy("random"), RandomPolicy)
    with pytest.raises(UnknownNameError):
        make_policy("epsilon")
    with pytest.raises(InputError):
        ThompsonSampling().choose([], None, np.random.default_rng(0))
    with pytest.raises(InputError):
        context_features(np.ones(3), np.ones((2, 4)))


# -- persistence ------------------------------------------------------------------------


def _video(cat: Catalog, name: str = "a") -> int:
    key, _, _ = cat.add_video(NewVideo(source=f"/media/{name}.mp4", content_hash=f"hash-{name}"))
    return key


def _variants(n: int = 3) -> list[NewCoverVariant]:
    rng = np.random.default_rng(0)
    return [NewCoverVariant(t=1.0 + i, score=0.9 - 0.1 * i, parts={"sharpness": 0.8}, reasons=[f"r{i}"],
                            box=(0, 0, 64, 36), faces=((1.0, 2.0, 3.0, 4.0, 0.99),),
                            embedding=rng.normal(size=8).astype(np.float32)) for i in range(n)]


def test_schema_is_migrated(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    assert SCHEMA_VERSION >= 3
    names = {r[0] for r in cat._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"covers", "cover_impressions", "cover_linucb"} <= names
    cat.close()


def test_feedback_survives_a_restart(tmp_path):
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    key = _video(cat)
    store = CoverStore(cat)
    vs = store.replace_variants(key, _variants())
    x = context_features(np.ones(8), np.stack([v.embedding for v in vs]))
    imp1 = store.record_impression(vs[1].id, policy="linucb", propensity=1.0, features=x, user_key="u1")
    imp2 = store.record_impression(vs[0].id, policy="thompson", propensity=0.4)
    assert store.record_click(imp1.token).recorded
    assert not store.record_click(imp1.token).recorded  # a repeated click counts once
    before = store.arm_states(store.variants(key))
    cat.close()

    reopened = CoverStore(Catalog(path))
    vs2 = reopened.variants(key)
    assert [(v.id, v.impressions, v.clicks) for v in vs2] == [(vs[0].id, 1, 0), (vs[1].id, 1, 1), (vs[2].id, 0, 0)]
    assert vs2[0].faces == ((1.0, 2.0, 3.0, 4.0, 0.99),) and vs2[1].reasons == ["r1"]
    after = reopened.arm_states(vs2)
    assert np.allclose(after[1].a, before[1].a) and np.allclose(after[1].b, x)
    imps = reopened.impressions(key)
    assert [i.token for i in imps] == [imp1.token, imp2.token] and imps[0].clicked_at is not None
    with pytest.raises(NotFoundError):
        reopened.record_click("i-unknown")
    with pytest.raises(NotFoundError):
        reopened.record_click(imp2.token, tenant="another")


def test_concurrent_feedback_is_not_lost(tmp_path):
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    key = _video(cat)
    vs = CoverStore(cat).replace_variants(key, _variants(2))
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            own = CoverStore(Catalog(path))  # a connection of its own, like another process
            for j in range(25):
                imp = own.record_impression(vs[(i + j) % 2].id, policy="random", propensity=0.5,
                                            features=np.ones(3))
                own.record_click(imp.token)
            own.catalog.close()
        except BaseException as e:  # surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = CoverStore(cat).variants(key)
    assert sum(v.impressions for v in got) == 100 and sum(v.clicks for v in got) == 100
    arms = CoverStore(cat).arm_states(got)
    assert sum(int(round(a.a[0, 0] - 1)) for a in arms) == 100  # every LinUCB update kept


def test_recomputing_keeps_history_of_the_same_frames_and_delete_cascades(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    key = _video(cat)
    other = _video(cat, "b")
    store = CoverStore(cat)
    vs = store.replace_variants(key, _variants(3))
    store.record_impression(vs[1].id, policy="thompson")
    store.replace_variants(other, _variants(1))
    new = store.replace_variants(key, [NewCoverVariant(t=2.0, score=0.95), NewCoverVariant(t=9.0, score=0.5)])
    assert new[0].id == vs[1].id and new[0].impressions == 1 and new[0].rank == 0
    assert {v.t for v in new} == {2.0, 9.0}
    with pytest.raises(InputError):
        store.replace_variants(key, [NewCoverVariant(t=1.0, score=0.5), NewCoverVariant(t=1.0, score=0.4)])
    with pytest.raises(InputError):
        NewCoverVariant(t=1.0, score=1.5)
    cat.delete_video(cat.get_video_by_key(key).video_id)
    assert store.variants(key) == [] and store.impressions(key) == []
    assert len(store.variants(other)) == 1  # other videos keep theirs
