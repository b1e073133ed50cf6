"""Tests for engine.lexical: the tokeniser, the tantivy backend and the rank-bm25 reference.

The corpus is a small set of realistic segment texts (speech, on-screen text,
labels, metadata) from a handful of videos. Every field of every doc is shorter than
40 tokens, where tantivy stores document lengths exactly (it quantises longer ones
to one byte), so its BM25 can be compared with rank-bm25's number for number.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import (
    CorruptIndexError,
    IndexLockedError,
    IndexMismatchError,
    InputError,
    NotFoundError,
    UnknownNameError,
)
from engine.lexical import FIELDS, LexicalDoc, LexicalHit, ReferenceBM25, TantivyIndex, open_lexical, tokenize
from engine.lexical import tantivy_index as tantivy_index_module
from engine.lexical.tantivy_index import MANIFEST_NAME

# --------------------------------------------------------------------------- corpus

# (id, video_key, transcript, ocr, labels, metadata); "" means the field is absent.
_ROWS: list[tuple[int, int, str, str, str, str]] = [
    # video 1: harbour footage
    (100, 1, "Aerial shot of the harbour at dusk, fishing boats coming back in.", "", "harbour boat dock pier", "Harbour at dusk, 4K drone footage"),
    (101, 1, "The boats tie up at the pier while gulls circle over the harbour.", "PORT OF LEITH", "boat pier gull", "Harbour at dusk, 4K drone footage"),
    (102, 1, "Drone footage rising over the old lighthouse and the harbour wall.", "", "lighthouse breakwater", "Harbour at dusk, 4K drone footage"),
    (103, 1, "A cargo ship leaves the harbour as the sun goes down.", "", "container ship", "Harbour at dusk, 4K drone footage"),
    # video 2: car review
    (200, 2, "This red car has a surprisingly quiet engine on the motorway.", "TEST DRIVE", "sports car", "Red sports car review"),
    (201, 2, "The car red paint is the factory colour, not a wrap.", "", "car paint", "Red sports car review"),
    (202, 2, "Fuel economy: about six litres per hundred kilometres on the motorway.", "6.1 L/100km", "dashboard", "Red sports car review"),
    (203, 2, "We parked the red car next to a blue van to compare the size.", "", "car van parking lot", "Red sports car review"),
    (204, 2, "Rear seats are tight, so tall passengers will complain on long trips.", "", "car interior seat", "Red sports car review"),
    # video 3: cooking
    (300, 3, "Start the tomato sauce with olive oil, garlic and a pinch of salt.", "STEP 1", "frying pan garlic", "Weeknight pasta recipe"),
    (301, 3, "Simmer the sauce for twenty minutes while the pasta water boils.", "", "pot stove", "Weeknight pasta recipe"),
    (302, 3, "Drain the pasta, keep a cup of water, and toss it with the sauce.", "STEP 3", "colander pasta", "Weeknight pasta recipe"),
    (303, 3, "Finish with basil and parmesan; the recipe serves four people.", "", "basil plate", "Weeknight pasta recipe"),
    (304, 3, "A quick tomato salad with basil makes a good side dish.", "", "salad bowl tomato", "Weeknight pasta recipe"),
    # video 4: football
    (400, 4, "The striker takes the penalty and scores in the last minute.", "GOAL 2-1", "football stadium crowd", "Cup final highlights"),
    (401, 4, "A long ball over the defence, the goalkeeper comes out and saves.", "", "football goalkeeper", "Cup final highlights"),
    (402, 4, "The referee shows a red card after a late tackle in midfield.", "", "referee card", "Cup final highlights"),
    (403, 4, "Fans celebrate in the stadium as the final whistle blows.", "FULL TIME", "crowd stadium", "Cup final highlights"),
    (404, 4, "Replay of the penalty from behind the goal: low and to the left.", "REPLAY", "goal net", "Cup final highlights"),
    # video 5: city timelapse
    (500, 5, "Timelapse of the city skyline as the lights come on after sunset.", "", "skyline skyscraper", "City lights timelapse"),
    (501, 5, "Traffic streams across the bridge, red tail lights and white headlights.", "", "bridge traffic car", "City lights timelapse"),
    (502, 5, "Drone footage over the river, the bridge lit up at night.", "", "river bridge", "City lights timelapse"),
    (503, 5, "Rain on the street; a taxi passes a neon sign for a noodle bar.", "NOODLE BAR", "street taxi neon", "City lights timelapse"),
    # video 6: product launch (Chinese)
    (600, 6, "我爱北京天安门，今天我们在北京举行发布会。", "iPhone15发布会", "舞台 屏幕", "苹果 新品 发布会"),
    (601, 6, "这款手机的相机可以拍摄4K视频，夜景效果很好。", "夜景模式", "手机 相机", "苹果 新品 发布会"),
    (602, 6, "北京烤鸭是很多游客必吃的美食。", "", "烤鸭 餐厅", "北京 美食"),
    (603, 6, "发布会结束后，记者在会场外采访观众。", "", "记者 观众", "苹果 新品 发布会"),
    # video 7: nature
    (700, 7, "A red fox crosses the snowy field at first light.", "", "fox snow field", "Winter wildlife"),
    (701, 7, "Deer graze at the edge of the forest while snow falls.", "", "deer forest snow", "Winter wildlife"),
    (702, 7, "An owl watches from a branch; the forest is silent.", "", "owl tree branch", "Winter wildlife"),
    (703, 7, "The fox hunts mice under the snow, listening before it jumps.", "", "fox snow", "Winter wildlife"),
    (704, 7, "Boats on a frozen lake, the harbour of a small fishing village.", "", "lake boat ice", "Winter wildlife"),
]


def _doc(row: tuple[int, int, str, str, str, str]) -> LexicalDoc:
    doc_id, video, transcript, ocr, labels, metadata = row
    values = dict(zip(FIELDS, (transcript, ocr, labels, metadata)))
    return LexicalDoc(id=doc_id, video_key=video, fields={k: v for k, v in values.items() if v})


DOCS = [_doc(r) for r in _ROWS]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> TantivyIndex:
    """A saved index of DOCS, shared read-only by tests that do not mutate."""
    path = tmp_path_factory.mktemp("lexical") / "idx"
    idx = TantivyIndex(path, create=True, writer_heap_bytes=15_000_000)
    idx.add(DOCS)
    idx.save(1)
    yield idx
    idx.close()


def _new(path: Path) -> TantivyIndex:
    return TantivyIndex(path, create=True, writer_heap_bytes=15_000_000)


def _ids(hits: list[LexicalHit]) -> list[int]:
    return [h.id for h in hits]


# --------------------------------------------------------------------------- tokenize


def test_tokenize_english_words_digits_punctuation_apostrophes() -> None:
    assert tokenize("The Quick, brown fox's jumping-over 2 lazy dogs!") == [
        "quick", "brown", "fox", "jumping", "over", "2", "lazy", "dogs",
    ]
    assert tokenize("Don't stop rock'n'roll, I\u2019m here") == ["dont", "stop", "rocknroll", "im", "here"]
    assert tokenize("3.5mm jack, 1,000 people, U.S.A.") == ["3.5", "mm", "jack", "1000", "people", "usa"]
    # stop words and punctuation alone give nothing
    assert tokenize("the, and... of!!") == []
    assert tokenize("") == []


def test_tokenize_chinese_with_jieba() -> None:
    tokens = tokenize("我爱北京天安门")
    assert "北京" in tokens and "天安门" in tokens
    assert all(len(t) <= 3 for t in tokens)  # segmented into words, not one run


def test_tokenize_mixed_chinese_english_and_fullwidth() -> None:
    tokens = tokenize("iPhone15发布会")
    assert tokens[:2] == ["iphone", "15"]
    assert "发布会" in tokens
    # full-width Latin and digits fold to ASCII (NFKC) and lowercase
    assert tokenize("ＩＰＨＯＮＥ１５") == ["iphone", "15"]
    # a query written with a space tokenises the same way as the compact form
    assert tokenize("iphone 15") == tokenize("IPHONE15")


def test_tokenize_kana_hangul_bigrams_and_other_scripts() -> None:
    assert tokenize("カメラ") == ["カメ", "メラ"]
    assert tokenize("안녕하세요") == ["안녕", "녕하", "하세", "세요"]
    assert tokenize("Привет, мир! naïve café") == ["привет", "мир", "naïve", "café"]


def test_tokenize_is_deterministic_in_a_fresh_process() -> None:
    text = "苹果公司在加州举行新品发布会, Tim Cook's iPhone15 keynote (4K)"
    code = f"from engine.lexical.tokenize import tokenize; print('|'.join(tokenize({text!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_repo_root())
    assert out.stdout.strip().split("|") == tokenize(text)
    # jieba's load messages ("Building prefix dict ...", "Loading model cost ...") are silenced
    assert "prefix dict" not in out.stderr and "Loading model" not in out.stderr


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- BM25 vs rank-bm25


def _assert_same_ranking(got: list[LexicalHit], ref_scores: dict[int, float], k: int) -> None:
    """``got`` ranks the same docs as the reference scores, allowing for exact ties.

    At every rank i, the reference score of tantivy's i-th doc must equal the
    reference's i-th best score (so a swapped pair of different scores fails, a
    swapped pair of tied docs does not).
    """
    ref_sorted = sorted(ref_scores.values(), reverse=True)[:k]
    assert len(got) == len(ref_sorted), (got, ref_scores)
    for rank, hit in enumerate(got):
        assert hit.id in ref_scores, f"tantivy returned {hit.id}, which holds no query term"
        assert ref_scores[hit.id] == pytest.approx(ref_sorted[rank], rel=1e-5), (rank, got, ref_sorted)


_QUERIES_ONE_FIELD = [
    "harbour boats at dusk",
    "red car motorway",
    "tomato sauce pasta",
    "penalty goal stadium",
    "drone footage bridge",
    "fox snow forest",
    "北京 发布会",
]
_QUERIES_ALL_FIELDS = [
    "harbour drone footage",
    "red sports car review",
    "pasta recipe basil",
    "stadium crowd goal",
    "city lights bridge",
    "苹果 发布会 相机",
]


@pytest.mark.parametrize("query", _QUERIES_ONE_FIELD)
def test_bm25_matches_rank_bm25_with_lucene_idf_on_one_field(built: TantivyIndex, query: str) -> None:
    # rank-bm25's BM25Okapi with the idf formula swapped for Lucene's (the one tantivy
    # uses) must give the same score to every matching doc, up to float32 rounding;
    # this checks tantivy's tf saturation, length normalisation and avgdl, and our
    # tokens and query construction, against an independent implementation.
    ref = ReferenceBM25.from_docs(DOCS, idf="lucene")
    terms = list(dict.fromkeys(tokenize(query)))
    ref_scores = ref.scores(terms, ["transcript"])
    got = built.search(query, k=len(DOCS), fields=["transcript"])
    assert len(ref_scores) >= 3  # the query really matches several docs
    assert {h.id: h.score for h in got} == pytest.approx(ref_scores, rel=1e-5)
    _assert_same_ranking(built.search(query, k=5, fields=["transcript"]), ref_scores, 5)


@pytest.mark.parametrize("query", _QUERIES_ALL_FIELDS)
def test_bm25_matches_rank_bm25_summed_over_fields(built: TantivyIndex, query: str) -> None:
    # Over all four fields BM25 is summed per field, each field with its own avgdl
    # and document frequencies (docs without the field count as length 0).
    ref = ReferenceBM25.from_docs(DOCS, idf="lucene")
    ref_scores = ref.scores(list(dict.fromkeys(tokenize(query))))
    got = built.search(query, k=len(DOCS))
    assert {h.id: h.score for h in got} == pytest.approx(ref_scores, rel=1e-5)
    _assert_same_ranking(built.search(query, k=5), ref_scores, 5)


@pytest.mark.parametrize("query", ["harbour", "red", "pasta sauce", "snow fox owl", "drone bridge river"])
def test_top5_agrees_with_plain_rank_bm25_okapi(built: TantivyIndex, query: str) -> None:
    # Unmodified rank-bm25 BM25Okapi (k1 set to tantivy's 1.2). Its idf is
    # ln((N-n+.5)/(n+.5)) with a floor for terms in more than half the docs, where
    # tantivy's is ln(1+(N-n+.5)/(n+.5)). Single-term queries are ranked by the
    # same tf and length factor whatever the idf (it is a common multiplier), so
    # they must agree exactly. For multi-term queries every term here occurs in
    # well under half the transcripts (checked below), so both idfs are decreasing
    # in n and weight the terms in the same order; the top 5 must then agree. A term
    # in most docs would hit rank-bm25's epsilon floor and the two would diverge
    # for reasons of formula, not of correctness, so such queries are not used.
    ref = ReferenceBM25.from_docs(DOCS, idf="okapi")
    terms = list(dict.fromkeys(tokenize(query)))
    transcripts = [tokenize(d.fields["transcript"]) for d in DOCS]
    for term in terms:
        df = sum(term in toks for toks in transcripts)
        assert 0 < df < len(DOCS) / 4, (term, df)
    ref_scores = ref.scores(terms, ["transcript"])
    got = built.search(query, k=5, fields=["transcript"])
    assert len(got) == min(5, len(ref_scores))
    _assert_same_ranking(got, ref_scores, 5)
    ref_top = ref.search(query, k=5, fields=["transcript"])
    if len({round(h.score, 9) for h in ref_top}) == len(ref_top):  # no ties: exact order
        assert _ids(got) == _ids(ref_top)


def test_reference_search_and_tantivy_agree_on_phrases(built: TantivyIndex) -> None:
    ref = ReferenceBM25.from_docs(DOCS, idf="lucene")
    for query, phrases in [("car", ["red car"]), ("harbour", ["drone footage"]), ("", ["fishing boats"])]:
        got = built.search(query, k=10, phrases=phrases)
        want = ref.search(query, k=10, phrases=phrases)
        assert _ids(got) == _ids(want)
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-5)


# --------------------------------------------------------------------------- semantics


def test_phrase_must_match_exact_sequence(tmp_path: Path) -> None:
    with _new(tmp_path / "p") as idx:
        idx.add([
            LexicalDoc(1, 1, {"transcript": "I saw a red car yesterday"}),
            LexicalDoc(2, 1, {"transcript": "the car, red and shiny"}),
            LexicalDoc(3, 2, {"transcript": "a red bus and a blue car"}),
            LexicalDoc(4, 2, {"ocr": "red", "labels": "car"}),  # split over two fields
        ])
        assert _ids(idx.search("red car")) != [1]  # plain terms match all four
        assert len(idx.search("red car")) == 4
        assert _ids(idx.search("red car", phrases=["red car"])) == [1]
        assert _ids(idx.search("", phrases=["Red, Car!"])) == [1]  # tokenised like text
        assert _ids(idx.search("car", phrases=["car red"])) == [2]
        assert idx.search("car", phrases=["red car", "blue car"]) == []
        # a one-token phrase is a required term
        assert sorted(_ids(idx.search("car", phrases=["bus"]))) == [3]
        # a phrase of stop words constrains nothing
        assert len(idx.search("car", phrases=["the of"])) == 4


def test_field_restriction(built: TantivyIndex) -> None:
    # "leith" is only in on-screen text, "gull" only in labels
    assert _ids(built.search("leith")) == [101]
    assert _ids(built.search("leith", fields=["ocr"])) == [101]
    assert built.search("leith", fields=["transcript", "labels", "metadata"]) == []
    assert _ids(built.search("gull", fields=["labels"])) == [101]
    assert built.search("gull", fields=["ocr"]) == []
    # a metadata-only word reaches every segment of the video
    assert sorted(_ids(built.search("weeknight", k=20))) == [300, 301, 302, 303, 304]
    assert built.search("weeknight", fields=["transcript"]) == []
    with pytest.raises(UnknownNameError):
        built.search("car", fields=["subtitles"])
    with pytest.raises(InputError):
        built.search("car", fields=[])


def test_empty_and_stopword_queries_return_nothing(built: TantivyIndex) -> None:
    for q in ["", "   ", "the and of", "!!!", "😀"]:
        assert built.search(q) == []


def test_chinese_search(built: TantivyIndex) -> None:
    assert _ids(built.search("天安门")) == [600]
    assert set(_ids(built.search("北京", k=10))) == {600, 602}
    assert 600 in _ids(built.search("iphone 15"))
    assert _ids(built.search("烤鸭", fields=["transcript"])) == [602]


def test_incremental_add_replace_and_delete_video(tmp_path: Path) -> None:
    with _new(tmp_path / "inc") as idx:
        idx.add(DOCS)
        assert idx.count() == len(DOCS)
        harbour_before = _ids(idx.search("harbour", k=50))
        assert 704 in harbour_before and 100 in harbour_before

        idx.delete_video(1)  # the harbour video
        video1 = {d.id for d in DOCS if d.video_key == 1}
        assert idx.count() == len(DOCS) - len(video1)
        for q in ["harbour", "leith", "lighthouse", "fishing boats dusk", "drone footage"]:
            assert not video1 & set(_ids(idx.search(q, k=50))), q
        assert _ids(idx.search("harbour", k=50)) == [704]
        idx.delete_video(1)  # idempotent
        idx.delete_video(999)  # unknown: no-op
        assert idx.count() == len(DOCS) - len(video1)

        # add a new video without a rebuild
        idx.add([LexicalDoc(800, 8, {"transcript": "A lighthouse keeper climbs the spiral stairs."})])
        assert _ids(idx.search("lighthouse")) == [800]
        assert idx.count() == len(DOCS) - len(video1) + 1

        # replacing an id keeps one copy and drops the old text
        idx.add([LexicalDoc(800, 8, {"transcript": "A keeper paints the stairs blue."})])
        assert idx.search("lighthouse") == []
        assert _ids(idx.search("paints")) == [800]
        assert idx.count() == len(DOCS) - len(video1) + 1

        # duplicate ids inside one batch: the last one wins
        idx.add([LexicalDoc(801, 8, {"transcript": "zebra"}), LexicalDoc(801, 8, {"transcript": "giraffe"})])
        assert idx.search("zebra") == [] and _ids(idx.search("giraffe")) == [801]


def test_bad_batch_leaves_index_untouched(tmp_path: Path) -> None:
    with _new(tmp_path / "bad") as idx:
        idx.add(DOCS[:3])
        with pytest.raises(UnknownNameError):
            idx.add([LexicalDoc(900, 9, {"transcript": "ok"}), LexicalDoc(901, 9, {"subtitle": "x"})])
        with pytest.raises(InputError):
            idx.add([LexicalDoc(902, 9, {"transcript": 42})])  # type: ignore[dict-item]
        with pytest.raises(InputError):
            idx.add([LexicalDoc(2**63, 9, {"transcript": "too big"})])
        assert idx.count() == 3
        assert idx.search("ok") == []
        for bad_k in (0, -1, 10_001, 2.5, True):
            with pytest.raises(InputError):
                idx.search("harbour", k=bad_k)  # type: ignore[arg-type]


_NASTY = [
    ":", '"', "(", ")", "-", "*", "+", "^", "~", "\\", "/", "[", "]", "{", "}", "!", "?",
    'title:"unterminated', "((((", "a AND OR NOT b", "-car", "car*", "car~2", "car^10",
    "[1 TO 5]", "field:", ":car", "\"red car\"", "red\x00car", "\u200b\u200d", "\ud7ff",
    "' OR 1=1; --", "<script>alert(1)</script>", "😀 car 🚗", "x" * 10_000,
    " ".join(f"word{i}" for i in range(1000)), "北京:天安门(\"", "ー・ー", "_",
]


@pytest.mark.parametrize("query", _NASTY)
def test_nasty_queries_do_not_crash(built: TantivyIndex, query: str) -> None:
    hits = built.search(query, k=5, phrases=[query])
    assert all(isinstance(h, LexicalHit) for h in hits)
    hits = built.search(query, k=5)
    assert all(h.score > 0 for h in hits)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60))
def test_any_text_query_is_safe(built: TantivyIndex, query: str) -> None:
    hits = built.search(query, k=5, phrases=[query[:20]])
    assert len(hits) <= 5
    assert tokenize(query) == tokenize(query)


# --------------------------------------------------------------------------- persistence


def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "persist"
    with _new(path) as idx:
        idx.add(DOCS)
        idx.save(7)
        before = {q: idx.search(q, k=10) for q in _QUERIES_ALL_FIELDS}
        assert idx.applied_seq == 7
    with open_lexical(path) as idx:
        assert idx.applied_seq == 7
        assert idx.count() == len(DOCS)
        assert not idx.tantivy_ahead_of_manifest
        for q, hits in before.items():
            assert idx.search(q, k=10) == hits
        with pytest.raises(InputError):
            idx.save(6)  # applied_seq never goes backwards
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert manifest["applied_seq"] == 7 and manifest["num_docs"] == len(DOCS)


def test_unsaved_changes_are_dropped_on_close(tmp_path: Path) -> None:
    path = tmp_path / "unsaved"
    with _new(path) as idx:
        idx.add(DOCS[:5])
        idx.save(1)
        idx.add(DOCS[5:10])  # buffered, never committed (no save, no read)
    with open_lexical(path) as idx:
        assert idx.count() == 5
        assert idx.applied_seq == 1


def _apply(idx: TantivyIndex, ops: list[tuple[str, object]]) -> None:
    for kind, arg in ops:
        if kind == "add":
            idx.add(arg)  # type: ignore[arg-type]
        else:
            idx.delete_video(arg)  # type: ignore[arg-type]


def test_crash_between_commit_and_manifest_then_idempotent_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ops 1..4 of a catalog op log; the process "dies" while saving after op 4:
    # tantivy has committed, the manifest write fails.
    ops: list[tuple[str, object]] = [
        ("add", [d for d in DOCS if d.video_key in (1, 2)]),
        ("add", [d for d in DOCS if d.video_key in (3, 4)]),
        ("delete", 2),
        ("add", [LexicalDoc(201, 2, {"transcript": "a re-indexed red car"})] + [d for d in DOCS if d.video_key == 5]),
    ]
    path = tmp_path / "crash"
    idx = _new(path)
    _apply(idx, ops[:2])
    idx.save(2)

    def die(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash before the manifest write")

    _apply(idx, ops[2:])
    monkeypatch.setattr(tantivy_index_module, "atomic_write_json", die)
    with pytest.raises(OSError):
        idx.save(4)
    monkeypatch.undo()
    idx.close()

    with open_lexical(path) as idx:
        assert idx.applied_seq == 2  # behind what tantivy holds
        assert idx.tantivy_ahead_of_manifest
        # the caller replays every op after applied_seq; each is idempotent
        _apply(idx, ops[2:])
        idx.save(4)
        replayed = {q: idx.search(q, k=20) for q in _QUERIES_ALL_FIELDS + ["red car", "re-indexed"]}
        replayed_count = idx.count()

    with _new(tmp_path / "clean") as clean:
        _apply(clean, ops)
        clean.save(4)
        assert replayed_count == clean.count()
        for q, hits in replayed.items():
            # same docs in the same order; scores may differ slightly because BM25's
            # N and df count deleted copies until tantivy merges segments
            assert _ids(hits) == _ids(clean.search(q, k=20)), q

    with open_lexical(path) as idx:
        assert idx.applied_seq == 4 and not idx.tantivy_ahead_of_manifest


def test_replaying_saved_ops_twice_changes_nothing(tmp_path: Path) -> None:
    with _new(tmp_path / "twice") as idx:
        idx.add(DOCS)
        idx.delete_video(3)
        idx.save(2)
        ids_before = {q: _ids(idx.search(q, k=20)) for q in _QUERIES_ONE_FIELD}
        count_before = idx.count()
        idx.add(DOCS)
        idx.delete_video(3)
        idx.save(2)
        assert idx.count() == count_before
        assert {q: _ids(idx.search(q, k=20)) for q in _QUERIES_ONE_FIELD} == ids_before


def test_one_writer_many_readers(tmp_path: Path) -> None:
    path = tmp_path / "rw"
    writer = _new(path)
    writer.add(DOCS[:10])
    writer.save(1)
    with pytest.raises(IndexLockedError):
        TantivyIndex(path)
    reader = open_lexical(path, read_only=True)  # no writer lock taken
    assert reader.count() == 10 and reader.applied_seq == 1
    with pytest.raises(InputError):
        reader.add(DOCS[10:12])
    with pytest.raises(InputError):
        reader.save(2)

    # a reader in another process, while this one holds the writer lock
    code = textwrap.dedent(
        f"""
        from engine.lexical import open_lexical
        idx = open_lexical({str(path)!r}, read_only=True)
        print(idx.count(), idx.applied_seq, [h.id for h in idx.search('red car', k=3)])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_repo_root())
    assert out.returncode == 0, out.stderr
    count, seq, ids = out.stdout.split(" ", 2)
    assert (int(count), int(seq)) == (10, 1)
    assert ids.strip() == str(_ids(writer.search("red car", k=3)))

    writer.add(DOCS[10:])
    writer.save(2)
    reader.refresh()
    assert reader.count() == len(DOCS) and reader.applied_seq == 2
    reader.close()
    writer.close()
    with TantivyIndex(path) as again:  # the lock was released
        assert again.count() == len(DOCS)


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        open_lexical(tmp_path / "missing")
    with pytest.raises(NotFoundError):
        open_lexical(tmp_path / "missing", create=True, read_only=True)
    with pytest.raises(UnknownNameError):
        open_lexical(tmp_path / "x", create=True, backend="lucene")

    path = tmp_path / "idx"
    with _new(path) as idx:
        idx.add(DOCS[:2])
        idx.save(1)
    manifest_path = path / MANIFEST_NAME
    good = json.loads(manifest_path.read_text())

    manifest_path.write_text(json.dumps({**good, "tokenizer_version": "0"}))
    with pytest.raises(IndexMismatchError):
        open_lexical(path)
    manifest_path.write_text(json.dumps({**good, "fields": ["transcript"]}))
    with pytest.raises(IndexMismatchError):
        open_lexical(path, read_only=True)
    manifest_path.write_text("{not json")
    with pytest.raises(CorruptIndexError):
        open_lexical(path)
    manifest_path.unlink()
    with pytest.raises(CorruptIndexError):  # tantivy data without its manifest
        open_lexical(path, create=True)
