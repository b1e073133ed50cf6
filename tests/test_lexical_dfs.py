"""BM25 with global statistics over shards (engine.lexical.bm25, engine.lexical.shard, and
the shard groups of query.shards): tantivy's formula reproduced outside tantivy, the
distributed-frequencies statistics, and sharded top-k lists equal to one index's."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from benchmarks.synthetic import make_corpus, make_queries
from engine.catalog import NewSegment, NewVideo
from engine.config import IndexConfig
from engine.index import VideoIndex
from engine.lexical import FIELDS, Bm25Stats, LexicalDoc, LexicalQuery, LexicalShard, TantivyIndex, tokenize
from engine.lexical.bm25 import FIELD_NORMS, ClauseWeights, TermMatch, fieldnorm_id
from engine.models.base import EncoderInfo

N_DOCS = 3000
DIM = 8
ENC = {"text": EncoderInfo("fake-text", "text", DIM, "1"), "image": EncoderInfo("fake-image", "image", DIM, "1")}


def _with_long_docs(docs: list[LexicalDoc]) -> list[LexicalDoc]:
    """Every 7th doc's transcript repeated 2-12 times (up to about 400 tokens), so that
    lengths above 40 tokens (stored lossily in one byte) are common."""
    out = []
    for d in docs:
        if d.id % 7 == 0:
            times = 2 + d.id % 11
            d = LexicalDoc(d.id, d.video_key, {**d.fields, "transcript": " ".join([d.fields["transcript"]] * times)})
        out.append(d)
    return out


@pytest.fixture(scope="module")
def corpus() -> list[LexicalDoc]:
    return _with_long_docs(make_corpus(N_DOCS, seed=11, video_size=20).docs)


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory) -> TantivyIndex:
    idx = TantivyIndex(tmp_path_factory.mktemp("single") / "lexical", create=True)
    idx.add(corpus)
    idx.save(1)
    yield idx
    idx.close()


def _queries(corpus: list[LexicalDoc], n: int = 80) -> list[tuple[str, tuple[str, ...], tuple[str, ...] | None]]:
    """(query, phrases, fields): keyword queries, some with a phrase, some on two fields,
    and some single frequent words (whose long posting lists hold many ties)."""
    out = []
    for j, (q, phrase) in enumerate(make_queries(corpus, n, seed=5)):
        phrases = (phrase,) if j % 4 == 1 else ()
        fields = ("transcript", "metadata") if j % 5 == 2 else None
        out.append((q, phrases, fields))
    common = [w for w, _ in Counter(t for d in corpus[:300] for t in tokenize(d.fields["transcript"])).most_common(6)]
    return out + [(w, (), None) for w in common]


def _independent_stats(docs: list[LexicalDoc], query: LexicalQuery) -> tuple[Bm25Stats, list[dict]]:
    """The statistics and per-doc token counts, from the tokenizer alone (no tantivy)."""
    per_doc = [{f: Counter(tokenize(d.fields.get(f, ""))) for f in FIELDS} for d in docs]
    tokens = {f: sum(sum(c[f].values()) for c in per_doc) for f in FIELDS}
    df = {(f, t): sum(1 for c in per_doc if c[f][t] > 0) for f, t in query.clauses}
    return Bm25Stats(len(docs), tokens, df), per_doc


def test_field_norms_are_tantivys_one_byte_lengths():
    assert FIELD_NORMS[:41] == tuple(range(41))
    assert FIELD_NORMS[41:50] == (42, 44, 46, 48, 50, 52, 54, 56, 60)
    assert FIELD_NORMS[-1] == 2_013_265_944 and len(FIELD_NORMS) == 256
    assert [fieldnorm_id(n) for n in (0, 40, 41, 42, 43, 59, 60, 2**31)] == [0, 40, 40, 41, 41, 48, 49, 255]


def test_rescoring_with_the_index_statistics_reproduces_tantivys_scores(corpus, single):
    """The formula, field lengths and float32 order of engine.lexical.bm25, fed with
    statistics and term frequencies counted by the tokenizer alone, give tantivy's own
    scores for every hit of many queries."""
    by_id = {d.id: d for d in corpus}
    checked = 0
    for q, phrases, fields in _queries(corpus, 40):
        hits = single.search(q, k=30, fields=fields, phrases=phrases)
        parsed = LexicalQuery.parse(q, fields, phrases)
        stats, _ = _independent_stats(corpus, parsed)
        weights = ClauseWeights(stats, parsed.clauses)
        for h in hits:
            toks = {f: tokenize(by_id[h.id].fields.get(f, "")) for f in FIELDS}
            matches = [TermMatch(f, t, toks[f].count(t), len(toks[f])) for f, t in parsed.clauses if t in toks[f]]
            assert weights.score(matches) == pytest.approx(h.score, rel=1e-6), (q, h.id)
            checked += 1
    assert checked > 500


def test_shard_statistics_sum_to_the_single_index(corpus, single):
    """Phase 1: the shards' (doc_freq, num_docs, total tokens) add up to one index's, and
    to the counts of the tokenizer itself."""
    one = LexicalShard()
    one.add(corpus)
    parts = [LexicalShard() for _ in range(3)]
    for d in corpus:
        parts[d.video_key % 3].add([d])
    assert sum(p.num_docs for p in parts) == one.num_docs == single.count() == N_DOCS
    for q, phrases, fields in _queries(corpus, 20):
        parsed = LexicalQuery.parse(q, fields, phrases)
        summed = Bm25Stats.sum(p.stats(parsed) for p in parts)
        whole = one.stats(parsed)
        counted, _ = _independent_stats(corpus, parsed)
        for got in (summed, whole):
            assert got.num_docs == counted.num_docs
            assert dict(got.total_tokens) == dict(counted.total_tokens)
            assert dict(got.doc_freq) == dict(counted.doc_freq)
        assert any(n > 0 for n in summed.doc_freq.values())


def assert_same_hits(got: list, want: list, wider: list, q: str) -> None:
    """``got`` is ``want``, scores to 1e-5, ids in the same order, except that documents
    with equal scores may come in another order (tantivy orders ties by its internal
    address, the shards by id), and at the cut the tied documents may be others of the
    same tie (all of them among ``wider``, the single index's longer list)."""
    assert len(got) == len(want), q
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-6, atol=1e-6, err_msg=q)
    ties_of = {}
    for h in wider:
        ties_of.setdefault(round(h.score, 4), set()).add(h.id)
    last = round(want[-1].score, 4) if want else None
    for a, b in zip(_groups(got), _groups(want)):
        key = round(b[0], 4)
        if key == last:  # the tie the cut goes through: the sharded list keeps its lowest ids
            assert a[1] <= ties_of[key], q
            if round(wider[-1].score, 4) != key:  # the whole tie is in ``wider``
                assert a[1] == set(sorted(ties_of[key])[:len(a[1])]), q
        else:
            assert a[1] == b[1], q
    assert all(x.id < y.id for x, y in zip(got, got[1:]) if x.score == y.score), q  # exact ties by id


def _groups(hits: list) -> list[tuple[float, set[int]]]:
    out: list[tuple[float, set[int]]] = []
    for h in hits:
        if out and abs(out[-1][0] - h.score) <= 1e-5 * max(1.0, abs(h.score)):
            out[-1][1].add(h.id)
        else:
            out.append((h.score, {h.id}))
    return out


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_sharded_top_k_equals_the_single_index(corpus, single, groups):
    """Phase 2: every shard's top k scored with the summed statistics, merged by score,
    is the single index's top k (the shards are unbalanced: videos by key modulo; one
    shard's statistics are the global ones, so it returns tantivy's scores)."""
    from query.shards import merge_lexical

    parts = [LexicalShard() for _ in range(groups)]
    for d in corpus:
        parts[d.video_key % groups].add([d])
    compared = 0
    for q, phrases, fields in _queries(corpus):
        parsed = LexicalQuery.parse(q, fields, phrases)
        stats = Bm25Stats.sum(p.stats(parsed) for p in parts)
        for k in (10, 100):
            got = merge_lexical([p.search(parsed, k, stats) for p in parts], k)
            want = single.search(q, k=k, fields=fields, phrases=phrases)
            assert_same_hits(got, want, single.search(q, k=k + 200, fields=fields, phrases=phrases), q)
            compared += len(want)
    assert compared > 3000


@pytest.mark.parametrize("k", [3, 20])
def test_sharded_top_k_is_exact_when_the_shards_average_lengths_differ(corpus, single, k):
    """Long transcripts in one shard, short ones in the other: the shards' local scores
    order documents unlike the global ones, and the bound on that difference (refetching
    when it is not met) still gives the single index's top k."""
    from query.shards import merge_lexical

    parts = [LexicalShard(), LexicalShard()]
    for d in corpus:
        parts[int(len(d.fields["transcript"]) > 200)].add([d])
    avg = [p.stats(LexicalQuery.parse("x")).total_tokens["transcript"] / p.num_docs for p in parts]
    assert avg[1] > 4 * avg[0]
    for q, phrases, fields in _queries(corpus):
        parsed = LexicalQuery.parse(q, fields, phrases)
        stats = Bm25Stats.sum(p.stats(parsed) for p in parts)
        got = merge_lexical([p.search(parsed, k, stats) for p in parts], k)
        want = single.search(q, k=k, fields=fields, phrases=phrases)
        assert_same_hits(got, want, single.search(q, k=k + 200, fields=fields, phrases=phrases), q)


# -- shard groups over an index folder -----------------------------------------------------
def _video(docs: list[LexicalDoc], i: int) -> NewVideo:
    rng = np.random.default_rng(i)
    segs = []
    for j, d in enumerate(docs):
        v = rng.normal(size=DIM).astype(np.float32)
        segs.append(NewSegment(start=2.0 * j, end=2.0 * j + 2.0, transcript=d.fields.get("transcript", ""),
                               ocr_text=d.fields.get("ocr", ""),
                               labels=[[w, 0.5] for w in d.fields.get("labels", "").split()],
                               vectors={"visual": v / np.linalg.norm(v)}))
    return NewVideo(source=f"/media/v{i}.mp4", content_hash=f"hash{i}", title=docs[0].fields["metadata"],
                    shots=[(0.0, 2.0 * len(docs))], segments=segs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An index folder of 1,500 segments in 75 videos (4 vector shards) with Zipfian texts."""
    path = tmp_path_factory.mktemp("dfs") / "index"
    docs = make_corpus(1500, seed=7, video_size=20).docs
    with VideoIndex.open(path, writer=True, config=IndexConfig(shards=4, flat_max=100_000), encoders=ENC) as idx:
        for v in range(75):
            idx.catalog.add_video(_video(docs[20 * v:20 * v + 20], v))
        idx.sync()
    return path, docs


def _in_process(path, groups: int):
    """``groups`` in-process ShardGroups behind the router's ShardedIndex (no Ray)."""
    from query.shards import ShardedIndex, ShardGroup, group_shards

    base = VideoIndex.open(path, vector_shards=())
    members = [ShardGroup(str(path), group_shards(base.config.shards, groups, g)) for g in range(groups)]

    def call_all(method: str, args: list) -> list:
        return [None if a is None else getattr(m, method)(*a) for m, a in zip(members, args)]

    return ShardedIndex(base, groups, call_all), members


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_shard_groups_bm25_equals_single_process_lexical_search(folder, groups):
    """The router's lexical_search over in-process groups, each holding the BM25 shard of
    its videos only, gives the single process's hits (ids and scores)."""
    path, docs = folder
    sharded, members = _in_process(path, groups)
    try:
        held = [m.lexical.num_docs for m in members]
        assert sum(held) == 1500 and (groups == 1 or all(0 < n < 1500 for n in held))
        with VideoIndex.open(path) as one:
            for q, phrases, fields in _queries(docs, 60):
                want = one.lexical_search(q, k=50, fields=fields, phrases=phrases)
                wider = one.lexical_search(q, k=250, fields=fields, phrases=phrases)
                got = sharded.lexical_search(q, k=50, fields=fields, phrases=phrases)
                assert_same_hits(got, want, wider, q)
    finally:
        for m in members:
            m.close()
        sharded.close()


def _fresh_index(path, where) -> TantivyIndex:
    """A lexical index built afresh from the live videos of the folder at ``path``."""
    idx = TantivyIndex(where, create=True)
    with VideoIndex.open(path) as one:
        for v in one.list_videos(limit=10_000):
            idx.add(one.lexical_docs(v.key, [s.id for s in one.catalog.segments_of(v.key)]))
    idx.save(1)
    return idx


def test_a_group_sees_new_commits_and_stops_returning_deleted_videos(folder, tmp_path, monkeypatch):
    """A group's BM25 shard follows the op log: a video committed after the group opened
    is found (with the statistics of the whole library), a deleted one is not, and the
    shard rebuilt once deletions pile up still agrees with one process."""
    import shutil

    import query.shards as shards_mod

    path = tmp_path / "index"
    shutil.copytree(folder[0], path)
    sharded, members = _in_process(path, 2)
    try:
        with VideoIndex.open(path, writer=True, config=IndexConfig(shards=4, flat_max=100_000), encoders=ENC) as w:
            fresh = make_corpus(40, seed=99, video_size=20).docs
            new = w.add_video(_video([LexicalDoc(d.id, 0, {**d.fields, "transcript": "zyzzyva quokka " +
                                                           d.fields["transcript"]}) for d in fresh[:20]], 500))
            hits = sharded.lexical_search("zyzzyva", k=50)
            assert {h.id for h in hits} == {s.id for s in w.catalog.segments_of(new.key)}
            old = w.list_videos(limit=3)[1]
            old_ids = {s.id for s in w.catalog.segments_of(old.key)}
            title = old.title
            # the title and one of the video's transcripts: words that live videos share
            probe = title + " " + w.catalog.segments_of(old.key)[0].transcript
            assert old_ids & {h.id for h in sharded.lexical_search(title, k=500)}
            w.delete_video(old.video_id)
            w.delete_video(new.video_id)
        assert sharded.lexical_search("zyzzyva", k=50) == []
        got = sharded.lexical_search(title, k=100)
        got_probe = sharded.lexical_search(probe, k=100)
        assert not old_ids & {h.id for h in got + got_probe}
        assert sum(m.lexical.deleted_docs for m in members) == 40  # hidden, not yet rebuilt
        fresh_index = _fresh_index(path, tmp_path / "fresh")  # no deleted doc in its statistics
        want, want_probe = fresh_index.search(title, k=100), fresh_index.search(probe, k=100)
        monkeypatch.setattr(shards_mod, "REBUILD_MIN_DELETED", 0)
        monkeypatch.setattr(shards_mod, "REBUILD_DELETED_SHARE", 0.0)
        with VideoIndex.open(path, writer=True, config=IndexConfig(shards=4, flat_max=100_000), encoders=ENC) as w:
            w.delete_video(w.list_videos(limit=1)[0].video_id)
        after = sharded.lexical_search(title, k=100)
        assert sum(m.lexical.deleted_docs for m in members) == 0  # rebuilt from the catalog
        assert sum(m.lexical.num_docs for m in members) == 1500 - 40
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-6)
        np.testing.assert_allclose([h.score for h in got_probe], [h.score for h in want_probe], rtol=1e-6)
        assert after and not old_ids & {h.id for h in after}
    finally:
        for m in members:
            m.close()
        sharded.close()
