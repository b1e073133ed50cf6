"""Query parser: every filter kind, phrases, negation, errors with positions, fuzzing."""
from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import QuerySyntaxError
from query.parse import MAX_QUERY_CHARS, Filters, ParsedQuery, Range, parse


def test_plain_text_is_kept_and_whitespace_collapsed() -> None:
    q = parse("  a dog   catching\ta frisbee ")
    assert q.text == "a dog catching a frisbee"
    assert q.search_text == q.text
    assert q.filters == Filters()
    assert q.filters.is_empty and not q.is_empty


def test_empty_query_parses_to_empty() -> None:
    q = parse("   ")
    assert q.text == "" and q.is_empty


def test_phrases_keep_order_in_search_text() -> None:
    q = parse('she says "welcome home" at the “front door”')
    assert q.phrases == ("welcome home", "front door")
    assert q.text == "she says at the"
    assert q.search_text == "she says welcome home at the front door"


def test_phrase_inside_a_word_splits_it() -> None:
    q = parse('sign"open 24 hours"')
    assert q.text == "sign" and q.phrases == ("open 24 hours",)


def test_negations() -> None:
    q = parse('beach -rain -"bad weather" NOT night NOT "red car" t-shirt - x')
    assert q.negated_terms == ("rain", "night")
    assert q.negated_phrases == ("bad weather", "red car")
    # A hyphen inside a word, or standing alone, is text.
    assert q.text == "beach t-shirt - x"
    assert "rain" not in q.search_text


def test_lowercase_not_is_a_word() -> None:
    assert parse("people not wearing hats").text == "people not wearing hats"
    assert parse("NOTHING else").text == "NOTHING else"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("duration>10s", Range(10, None, False, True)),
        ("duration>=1m30s", Range(90, None)),
        ("duration<2m", Range(None, 120, True, False)),
        ("duration<=1h", Range(None, 3600)),
        ("dur:10-30s", Range(10, 30)),
        ("dur:1-2m", Range(60, 120)),
        ("dur:30s-1m", Range(30, 60)),
        ("duration:>=10", Range(10, None)),
        ("duration>1:30", Range(90, None, False, True)),
        ("duration<1:02:03", Range(None, 3723, True, False)),
        ("duration>1.5min", Range(90, None, False, True)),
        ("duration<1m30", Range(None, 90, True, False)),
        ("DURATION>=2hours", Range(7200, None)),
        ("duration>10s duration<1m", Range(10, 60, False, False)),
        ("duration>10s duration>=20s", Range(20, None)),
    ],
)
def test_duration(query: str, expected: Range) -> None:
    assert parse(query).filters.duration == expected
    assert parse(query).text == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("res>=1080p", Range(1080, None)),
        ("res>720p", Range(720, None, False, True)),
        ("res<=720", Range(None, 720)),
        ("res:4k", Range(2160, 4320, True, False)),
        ("res:1080p", Range(1080, 1440, True, False)),
        ("res:8k", Range(4320, None, True, False)),
        ("resolution:hd", Range(720, 1080, True, False)),
        ("res>=2160p", Range(2160, None)),
        ("res>=1920x1080", Range(1080, None)),
        ("res>=1080x1920", Range(1080, None)),  # vertical: the short side counts
        ("RES:>=UHD", Range(2160, None)),
        ("res:5000p", Range(5000, None, True, False)),  # above the top tier: open-ended
    ],
)
def test_resolution(query: str, expected: Range) -> None:
    assert parse(query).filters.resolution == expected


def test_resolution_tokens_without_field_are_text() -> None:
    q = parse("harbour 4k 1080p")
    assert q.filters.resolution is None and q.text == "harbour 4k 1080p"


@pytest.mark.parametrize(
    ("query", "expected", "inside", "outside"),
    [
        ("fps>=50", Range(49.95, None), [50, 59.94, 60], [29.97, 48]),
        ("fps>=60", Range(59.94, None), [60000 / 1001, 60], [50]),
        ("fps:60", Range(59.94, 60), [59.94, 60], [50, 120]),
        ("fps:24-30", Range(23.976, 30), [24000 / 1001, 25, 30000 / 1001, 30], [50]),
        ("fps>30", Range(30, None, False, True), [50], [30, 29.97]),
        ("fps<25", Range(None, 25, True, False), [24], [25]),
    ],
)
def test_fps(query: str, expected: Range, inside: list[float], outside: list[float]) -> None:
    got = parse(query).filters.fps
    assert got == expected
    assert all(got.contains(v) for v in inside)
    assert not any(got.contains(v) for v in outside)


def test_languages() -> None:
    f = parse("lang:zh language:EN lang:zh-CN -lang:fr").filters
    assert f.languages == ("zh", "en")
    assert f.exclude_languages == ("fr",)


def test_dates_are_inclusive_periods() -> None:
    f = parse("after:2024-01-01 before:2024-06-30").filters
    assert (f.after, f.before) == (date(2024, 1, 1), date(2024, 6, 30))
    f = parse("after:2023 before:2024-02").filters
    assert (f.after, f.before) == (date(2023, 1, 1), date(2024, 2, 29))
    f = parse("after:2020 after:2021-05").filters  # the later 'after' wins
    assert f.after == date(2021, 5, 1)


def test_tags_people_sources_has() -> None:
    q = parse(
        'tag:drone tag:"time lapse" -tag:night person:"Ada Lovelace" NOT person:Bob '
        "source:footage/aerials in:s3://bucket/clips -in:tmp has:speech has:ocr "
        "-has:audio harbour"
    )
    f = q.filters
    assert f.tags == ("drone", "time lapse")
    assert f.exclude_tags == ("night",)
    assert f.people == ("Ada Lovelace",)
    assert f.exclude_people == ("Bob",)
    assert f.sources == ("footage/aerials", "s3://bucket/clips")
    assert f.exclude_sources == ("tmp",)
    assert f.has == ("speech", "text")
    assert f.has_not == ("audio",)
    assert q.text == "harbour"


def test_repeated_set_values_are_kept_once() -> None:
    assert parse("tag:a tag:a").filters.tags == ("a",)


def test_combination_and_to_dict_is_json() -> None:
    q = parse(
        'aerial harbour at dusk "welcome" -rain res>=4k duration>=10s fps>=50 lang:en '
        "after:2024-01-01 tag:drone"
    )
    assert q.text == "aerial harbour at dusk"
    assert q.filters.has_technical
    d = json.loads(json.dumps(q.to_dict()))
    assert d["filters"]["resolution"] == {
        "min": 2160.0,
        "max": None,
        "min_inclusive": True,
        "max_inclusive": True,
    }
    assert d["filters"]["after"] == "2024-01-01"
    assert d["phrases"] == ["welcome"] and d["negated_terms"] == ["rain"]
    assert isinstance(q, ParsedQuery)


@pytest.mark.parametrize(
    "query",
    [
        "meeting at 10:30",
        "https://example.com/video?id=3",
        "aspect 16:9",
        "speed>5",
        "foo:bar",
        "hashtag:sunset",
        "inside:out",
        "during:lunch",
        "C:\\videos\\clip.mp4",
    ],
)
def test_unknown_fields_urls_and_times_stay_text(query: str) -> None:
    q = parse(query)
    assert q.text == query and q.filters.is_empty


def test_range_semantics() -> None:
    r = Range(10, 20, False, True)
    assert not r.contains(10) and r.contains(10.5) and r.contains(20) and not r.contains(21)
    assert Range(5, None).intersect(Range(None, 5)) == Range(5, 5)
    assert not Range(5, 5).is_empty and Range(5, 5, False, True).is_empty


@pytest.mark.parametrize(
    ("query", "position", "fragment"),
    [
        ('a "unclosed phrase', 2, "unclosed quote"),
        ("tag:“open", 4, "unclosed quote"),
        ('x ""', 2, "empty quoted text"),
        ("tag:", 4, "empty value"),
        ("lang: zh", 5, "empty value"),
        ("duration>>3", 9, "invalid comparison"),
        ("duration=>3", 9, "invalid comparison"),
        ("res:=4k", 4, "invalid comparison"),
        ("duration>10x", 11, "expected a unit"),
        ("duration>abc", 9, "expected a duration"),
        ("duration>1m2h", 12, "units must go"),
        ("dur:10s", 4, "needs a range"),
        ("dur:10s-", 8, "upper end"),
        ("dur:1m-10s", 4, "lower end is above"),
        ("res>=12mp", 5, "resolution"),
        ("fps>=fast", 5, "frames a second"),
        ("fps:30-x", 7, "frames a second"),
        ("lang:xx", 5, "ISO 639-1"),
        ("lang:english", 5, "ISO 639-1"),
        ("lang>en", 4, "takes ':'"),
        ("after:2024-13-01", 6, "not a valid date"),
        ("before:2024-02-30", 7, "not a valid date"),
        ("after:01/02/2024", 6, "ISO date"),
        ("after:2024-06-01 before:2024-01-01", 17, "later than"),
        ("duration>1m duration<10s", 12, "contradicts"),
        ("has:smell", 4, "expected one of"),
        ("has:speech -has:speech", 12, "both for and against"),
        ("tag:a -tag:a", 7, "both for and against"),
        ("-duration>3s", 1, "cannot be negated"),
        ("NOT res>=4k", 4, "cannot be negated"),
        ("x NOT", 2, "NOT needs"),
        ("x NOT   ", 2, "NOT needs"),
        ("--x", 1, "double negation"),
        ("NOT -x", 4, "double negation"),
        ("a" * (MAX_QUERY_CHARS + 1), MAX_QUERY_CHARS, "longer than"),
    ],
)
def test_errors_point_at_the_offending_character(query: str, position: int, fragment: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    err = info.value
    assert err.position == position, (err.position, str(err))
    assert fragment in err.message
    assert err.query == query


def test_error_message_draws_a_pointer() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("cats tag:")
    assert str(info.value).endswith("  cats tag:\n           ^")


def test_non_string_raises_query_syntax_error() -> None:
    with pytest.raises(QuerySyntaxError):
        parse(None)  # type: ignore[arg-type]


def test_query_at_the_limit_parses() -> None:
    assert parse("a" * MAX_QUERY_CHARS).text == "a" * MAX_QUERY_CHARS


# -- fuzzing: any text gives a ParsedQuery or a QuerySyntaxError, nothing else ---------

_FRAGMENTS = [
    "dog", "-", "NOT", '"', "“", "”", ":", ">", ">=", "<", "=", "duration", "dur", "res",
    "fps", "lang", "after", "before", "tag", "person", "source", "in", "has", "10s", "1m30",
    "4k", "1080p", "2024-01-01", "2024", "zh", "speech", "1:30", "10-30s", "-", " ", "  ",
    "\t", "é", "港口", "\x00", "9" * 40, ".", "x",
]


def _check(text: str) -> None:
    try:
        q = parse(text)
    except QuerySyntaxError as e:
        assert 0 <= e.position <= len(text)
        return
    assert isinstance(q, ParsedQuery)
    json.dumps(q.to_dict())
    for r in (q.filters.duration, q.filters.resolution, q.filters.fps):
        assert r is None or not r.is_empty


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_arbitrary_text(text: str) -> None:
    _check(text)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=14).map("".join))
def test_fuzz_grammar_fragments(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('dur:>=<-0123456789smh."NOT ')), max_size=40))
def test_fuzz_field_values(text: str) -> None:
    _check(text)
