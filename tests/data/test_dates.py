"""Tests of the date-pair generator, the character vocabulary and the dataset."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

import pytest
import torch
from babel.dates import get_month_names
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.data.dates import (
    DATE_RANGE,
    LOCALES,
    TWO_DIGIT_YEARS,
    DateDataset,
    DateExample,
    DateFormat,
    DateGenerator,
    Vocab,
    encode_source,
    english_ordinal,
    formats_for,
    make_splits,
    render_date,
)

ALL_FORMATS = [fmt for tag in LOCALES for fmt in formats_for(tag)]


@pytest.fixture(scope="module")
def sample() -> list[DateExample]:
    return DateGenerator().generate(20_000, seed=123)


# --- English ordinals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
     (21, "21st"), (22, "22nd"), (23, "23rd"), (30, "30th"), (31, "31st"), (101, "101st"),
     (111, "111th"), (112, "112th")],
)
def test_english_ordinal(n: int, expected: str) -> None:
    assert english_ordinal(n) == expected


def test_english_ordinal_rejects_zero() -> None:
    with pytest.raises(ValueError, match=r"`n` must be a finite integer > 0; got 0"):
        english_ordinal(0)


# --- rendering: the text says the same date as the ISO target ----------------------------------


def _read_numeric(text: str) -> dt.date:
    """An independent reader of the documented numeric conventions."""
    korean_short = re.fullmatch(r"(\d{2})\. (\d{1,2})\. (\d{1,2})\.", text)
    if korean_short:
        yy, m, d = map(int, korean_short.groups())
        return dt.date(1900 + yy if yy >= 50 else 2000 + yy, m, d)
    fields = re.split(r"\. |[/.\- ]", text.rstrip("."))
    assert len(fields) == 3, text
    if len(fields[0]) == 4:  # year first
        y, m, d = fields
    elif "/" in text:  # slash is reserved for month/day/year
        m, d, y = fields
    else:  # day/month/year with '.', '-' or ' '
        d, m, y = fields
    year = int(y) if len(y) == 4 else (1900 + int(y) if int(y) >= 50 else 2000 + int(y))
    return dt.date(year, int(m), int(d))


@settings(max_examples=300, deadline=None)
@given(
    date=st.dates(min_value=DATE_RANGE[0], max_value=DATE_RANGE[1]),
    fmt=st.sampled_from(ALL_FORMATS),
)
def test_rendered_text_carries_the_date(date: dt.date, fmt: DateFormat) -> None:
    if fmt.two_digit_year and not TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]:
        with pytest.raises(ValueError, match=rf"format '.*' writes two-digit years, which stand for 1950-2049 "
                                             rf"\(pivot at 50\); got the date {date}"):
            render_date(date, fmt)
        date = date.replace(year=TWO_DIGIT_YEARS[0] + date.year % 100)  # the same two digits, in the window
    text = render_date(date, fmt)
    assert text and text == text.strip()
    digits = re.findall(r"\d+", text)
    if not re.search(r"[^\d\s./\-]", text):  # purely numeric
        assert _read_numeric(text) == date
        return
    # The year appears (4 digits, or 2 digits for a `yy` pattern), and so does the day.
    year_field = f"{date.year}" if "yy" not in fmt.pattern.replace("yyyy", "") else f"{date.year % 100:02d}"
    assert year_field in digits
    assert str(date.day) in [d.lstrip("0") or "0" for d in digits]
    # A named month is the locale's own name for the month (Babel's CLDR data).
    if "MMMM" in fmt.pattern:
        assert get_month_names("wide", locale=fmt.babel_locale)[date.month] in text
    elif "MMM" in fmt.pattern:
        assert get_month_names("abbreviated", locale=fmt.babel_locale)[date.month] in text
    else:
        assert str(date.month) in [d.lstrip("0") for d in digits]
    if "{ord}" in fmt.pattern:
        assert english_ordinal(date.day) in text
    if "{d1er}" in fmt.pattern and date.day == 1:
        assert "1er" in text


def test_generated_iso_targets_parse_and_lie_in_range(sample: list[DateExample]) -> None:
    for ex in sample:
        date = dt.date.fromisoformat(ex.iso)
        assert date.isoformat() == ex.iso
        assert DATE_RANGE[0] <= date <= DATE_RANGE[1]
        if not re.search(r"[^\d\s./\-]", ex.text):
            assert _read_numeric(ex.text) == date, ex


def test_every_input_string_has_one_reading(sample: list[DateExample]) -> None:
    readings: dict[str, set[str]] = defaultdict(set)
    for ex in sample:
        readings[ex.text].add(ex.iso)
    ambiguous = {text: isos for text, isos in readings.items() if len(isos) > 1}
    assert not ambiguous


def test_dmy_slash_patterns_are_rewritten() -> None:
    for fmt in ALL_FORMATS:
        if "/" in fmt.pattern:
            assert fmt.pattern.index("M") < fmt.pattern.index("d") or fmt.pattern.startswith("y")
    gb_short = next(f for f in formats_for("en") if f.name == "en_GB:short")
    assert render_date(dt.date(2021, 4, 3), gb_short) == "03-04-2021"


def test_sample_covers_locales_formats_and_styles(sample: list[DateExample]) -> None:
    assert {ex.locale for ex in sample} == set(LOCALES)
    assert {ex.format for ex in sample} == {f.name for f in ALL_FORMATS}
    texts = [ex.text for ex in sample]
    assert any(re.search(r"\d(st|nd|rd|th) of [A-Z][a-z]+, \d{4}$", t) for t in texts)
    assert any(re.search(r"^[A-Z][a-z]+ \d{1,2}(st|nd|rd|th) \d{4}$", t) for t in texts)
    assert any("1er" in t for t in texts)
    assert any(re.fullmatch(r"\d{4}년 \d{1,2}월 \d{1,2}일", t) for t in texts)
    assert any(t.islower() and re.search("[a-z]", t) for t in texts)
    assert any(t.isupper() for t in texts)
    for sep in "/-. ":
        assert any(re.fullmatch(rf"\d+\{sep}\d+\{sep}\d+", t) for t in texts), sep


def test_generation_is_deterministic_by_seed() -> None:
    gen = DateGenerator()
    assert gen.generate(200, seed=7) == gen.generate(200, seed=7)
    assert gen.generate(200, seed=7) != gen.generate(200, seed=8)
    assert gen.generate(0, seed=7) == []


def test_locale_and_format_subsets() -> None:
    ko = DateGenerator(locales="ko").generate(300, seed=1)
    assert {ex.locale for ex in ko} == {"ko"}
    fmt = formats_for("de")[0]
    only = DateGenerator(locales=("de",), formats=[fmt]).generate(50, seed=1)
    assert {ex.format for ex in only} == {fmt.name}


def test_make_splits_hold_out_unseen_strings() -> None:
    splits = make_splits(2000, 300, 500, seed=3)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [2000, 300, 500]
    train = {ex.text for ex in splits["train"]}
    valid = {ex.text for ex in splits["valid"]}
    assert not train & valid
    assert not train & {ex.text for ex in splits["test"]}
    assert not valid & {ex.text for ex in splits["test"]}
    assert make_splits(2000, 300, 500, seed=3) == splits


def test_make_splits_fails_when_no_unseen_string_remains() -> None:
    day = dt.date(2021, 3, 3)
    one_string = DateGenerator(locales=("de",), formats=formats_for("de")[:1], start=day, end=day,
                               lower_case_prob=0.0, upper_case_prob=0.0)
    with pytest.raises(ValueError, match=r"could not draw 1 valid examples unseen in training"):
        make_splits(1, 1, 1, generator=one_string)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"locales": ("en", "xx")}, r"`locales` must be one of 'en', 'ko', 'de', 'fr', 'es'; got 'xx'"),
        ({"locales": ()}, r"`locales` is empty"),
        ({"start": dt.date(1799, 12, 31)}, r"1800-01-01 <= start <= end <= 2199-12-31"),
        ({"end": dt.date(2200, 1, 1)}, r"start <= end <= 2199-12-31 \(two-digit years pivot at 50\)"),
        ({"locales": ("en",), "formats": [f for f in formats_for("en") if f.two_digit_year],
          "start": dt.date(1800, 1, 1), "end": dt.date(1949, 12, 31)},
         r"locale\(s\) en all write two-digit years, which stand for 1950-2049; arguments `start`=1800-01-01 "
         r"and `end`=1949-12-31 lie outside"),
        ({"start": dt.date(2001, 1, 1), "end": dt.date(2000, 1, 1)}, r"start <= end"),
        ({"lower_case_prob": 0.7, "upper_case_prob": 0.5}, r"sum <= 1"),
        ({"locales": ("en",), "formats": formats_for("de")}, r"tag 'de', not among `locales`"),
        ({"locales": ("en", "de"), "formats": formats_for("de")}, r"no formats given for locale\(s\) en"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DateGenerator(**kwargs)


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"`n` must be a finite integer >= 0; got -1"):
        DateGenerator().generate(-1, seed=0)
    with pytest.raises(TypeError, match=r"`seed` must be an int or a str; got 1.5"):
        DateGenerator().generate(3, seed=1.5)
    with pytest.raises(ValueError, match=r"`tag` must be one of"):
        formats_for("jp")


# --- vocabulary --------------------------------------------------------------------------------

VOCAB = Vocab("abcxyz 0123456789-년é")


def test_vocab_layout() -> None:
    assert VOCAB.itos[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (VOCAB.pad_id, VOCAB.bos_id, VOCAB.eos_id, VOCAB.unk_id) == (0, 1, 2, 3)
    assert len(VOCAB) == 4 + len(set("abcxyz 0123456789-년é"))
    assert Vocab.build(["ba", "c"]).itos[4:] == ["a", "b", "c"]


@given(st.text(alphabet="abcxyz 0123456789-년é", max_size=40))
def test_vocab_decode_inverts_encode(text: str) -> None:
    ids = VOCAB.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == VOCAB.bos_id and ids[-1] == VOCAB.eos_id
    assert VOCAB.unk_id not in ids
    assert VOCAB.decode(ids) == text


def test_vocab_unknown_characters() -> None:
    ids = VOCAB.encode("a?b")
    assert ids[1] == VOCAB.unk_id
    assert VOCAB.decode(ids) == "a<unk>b"
    assert VOCAB.unknown("a?b!?") == ["?", "!"]
    assert "?" not in VOCAB and "a" in VOCAB


def test_vocab_decode_stops_at_end_token_and_checks_range() -> None:
    ids = [*VOCAB.encode("ab"), VOCAB.eos_id, *VOCAB.encode("c")]
    assert VOCAB.decode(ids) == "ab"
    assert VOCAB.decode(ids, stop_at_eos=False) == "abc"
    with pytest.raises(ValueError, match=r"token id 99 is out of range"):
        VOCAB.decode([99])


def test_vocab_json_round_trip(tmp_path) -> None:
    path = tmp_path / "vocab.json"
    VOCAB.save(path)
    assert Vocab.load(path) == VOCAB
    assert "년" in path.read_text(encoding="utf-8")


def test_vocab_rejects_bad_data() -> None:
    with pytest.raises(ValueError, match=r"single characters"):
        Vocab(["ab"])
    with pytest.raises(ValueError, match=r"not a gicho character vocabulary"):
        Vocab.from_dict({"specials": ["<pad>"], "chars": ["a"]})


# --- source encoding: bad input ----------------------------------------------------------------


def test_encode_source_strips_and_encodes() -> None:
    assert encode_source("  ab 1 ", VOCAB, max_len=10) == VOCAB.encode("ab 1")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_encode_source_rejects_empty(text: str) -> None:
    with pytest.raises(ValueError, match=r"empty date string"):
        encode_source(text, VOCAB, max_len=10)


def test_encode_source_rejects_too_long() -> None:
    with pytest.raises(ValueError, match=r"has 11 characters; the model reads at most max_input_len=10"):
        encode_source("a" * 11, VOCAB, max_len=10)
    assert len(encode_source("a" * 10, VOCAB, max_len=10)) == 10


def test_encode_source_unknown_characters_warn_and_map_to_unk() -> None:
    with pytest.warns(UserWarning, match=r"characters '\?' of 'a\?b' are not in the vocabulary"):
        ids = encode_source("a?b", VOCAB, max_len=10)
    assert ids == [VOCAB.stoi["a"], VOCAB.unk_id, VOCAB.stoi["b"]]


def test_encode_source_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match=r"a date must be a string; got 20210303"):
        encode_source(20210303, VOCAB, max_len=10)


# --- dataset and batches -----------------------------------------------------------------------


def test_dataset_batches() -> None:
    examples = DateGenerator().generate(16, seed=5)
    src_vocab = Vocab.build(ex.text for ex in examples)
    tgt_vocab = Vocab("0123456789-")
    data = DateDataset(examples, src_vocab, tgt_vocab, max_input_len=64)
    assert len(data) == 16
    batch = data.collate([data[i] for i in range(len(data))])
    lengths = torch.tensor([len(ex.text) for ex in examples])
    B, S = batch["src"].shape
    assert (B, S) == (16, int(lengths.max()))
    assert torch.equal(batch["src_mask"].sum(1), lengths)
    assert torch.all(batch["src"][~batch["src_mask"]] == src_vocab.pad_id)
    for i, ex in enumerate(examples):
        assert src_vocab.decode(batch["src"][i]) == ex.text
        assert tgt_vocab.decode(batch["labels"][i]) == ex.iso
    assert batch["labels"].shape == (16, 11)
    assert torch.all(batch["labels"][:, -1] == tgt_vocab.eos_id)
    assert torch.all(batch["tgt_in"][:, 0] == tgt_vocab.bos_id)
    assert torch.equal(batch["tgt_in"][:, 1:], batch["labels"][:, :-1])


def test_dataset_rejects_bad_examples() -> None:
    vocab = Vocab("0123456789-abc ")
    with pytest.raises(ValueError, match=r"target 'March' is not an ISO date"):
        DateDataset([DateExample("abc", "March", "en", "x")], vocab, vocab, max_input_len=8)
    with pytest.raises(ValueError, match=r"max_input_len=2"):
        DateDataset([DateExample("abc", "2021-03-03", "en", "x")], vocab, vocab, max_input_len=2)


def test_years_outside_the_two_digit_window_are_written_with_four_digits(sample: list[DateExample]) -> None:
    assert DATE_RANGE == (dt.date(1800, 1, 1), dt.date(2199, 12, 31))
    two_digit = {f.name for f in ALL_FORMATS if f.two_digit_year}
    assert two_digit == {"en_US:short", "MM/dd/yy", "ko_KR:short", "de_DE:short", "d. MMMM yy", "es_ES:short"}
    years = [int(ex.iso[:4]) for ex in sample]
    assert min(years) < 1810 and max(years) > 2190  # the whole range is drawn
    outside = [ex for ex, y in zip(sample, years, strict=True) if not 1950 <= y <= 2049]
    assert len(outside) > len(sample) / 2
    assert not [ex for ex in outside if ex.format in two_digit]
    assert all(ex.iso[:4] in ex.text for ex in outside)
    inside = [ex for ex, y in zip(sample, years, strict=True) if 1950 <= y <= 2049]
    assert {ex.format for ex in inside} >= two_digit  # still used where they have one reading
    share = sum(ex.format in two_digit for ex in sample) / len(sample)
    assert share > 0.07  # they keep their share: 1/5 * (2/28 + 1/12 + 2/12 + 0 + 1/12) ~ 0.081
    old = DateGenerator(start=dt.date(1800, 1, 1), end=dt.date(1949, 12, 31)).generate(500, seed=5)
    assert all(ex.format not in two_digit and ex.iso[:4] in ex.text for ex in old)
