"""Tests of the ISO-date grammar for constrained decoding, and of reading dates with refusal."""

from __future__ import annotations

import datetime as dt

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.data.date_grammar import (
    ISO_LENGTH,
    MIN_CONFIDENCE,
    DateReading,
    IsoDateConstraint,
    read_dates,
)
from gicho.data.dates import TARGET_ALPHABET, Vocab
from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig

TARGET = Vocab(TARGET_ALPHABET)
SMALL_RANGE = (1899, 1901)  # 1900 is not a leap year; the brute force below enumerates it
SMALL = IsoDateConstraint(TARGET, *SMALL_RANGE)
WIDE = IsoDateConstraint(TARGET, 1800, 2199)


def _dates(first: int, last: int) -> set[str]:
    day, end, out = dt.date(first, 1, 1), dt.date(last, 12, 31), set()
    while day <= end:
        out.add(day.isoformat())
        day += dt.timedelta(days=1)
    return out


VALID = _dates(*SMALL_RANGE)
PREFIXES = sorted({s[:t] for s in VALID for t in range(ISO_LENGTH + 1)})


def _brute_force(prefix: str) -> set[str]:
    """The characters (and "</s>") that continue ``prefix`` towards a date of VALID."""
    nxt = {s[len(prefix)] for s in VALID if s.startswith(prefix) and len(s) > len(prefix)}
    return nxt | ({"</s>"} if prefix in VALID else set())


def _allowed(constraint: IsoDateConstraint, prefixes: list[str]) -> list[set[str]]:
    t = len(prefixes[0])
    ids = torch.tensor([TARGET.encode(p) for p in prefixes], dtype=torch.long).view(len(prefixes), t)
    mask = constraint(ids)
    assert mask.shape == (len(prefixes), len(TARGET)) and mask.dtype == torch.bool
    return [{TARGET.itos[i] for i in row.nonzero()[:, 0].tolist()} for row in mask]


def test_constraint_equals_brute_force_on_every_valid_prefix() -> None:
    for t in range(ISO_LENGTH + 1):
        group = [p for p in PREFIXES if len(p) == t]
        for prefix, got in zip(group, _allowed(SMALL, group), strict=True):
            assert got == _brute_force(prefix), prefix


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789-", max_size=ISO_LENGTH + 1), st.sampled_from(sorted(VALID)))
def test_constraint_equals_brute_force_on_any_prefix(text: str, date: str) -> None:
    for prefix in (text, date[: len(text)] + text[len(date):], date[:-1] + text[:1]):
        assert _allowed(SMALL, [prefix])[0] == _brute_force(prefix), prefix


def test_constraint_knows_months_days_and_leap_years() -> None:
    assert _allowed(WIDE, ["2000-02-2"])[0] == set("0123456789")  # 2000 is a leap year
    assert _allowed(WIDE, ["2100-02-2"])[0] == set("012345678")  # 2100 is not
    assert _allowed(WIDE, ["2021-04-3"])[0] == {"0"}
    assert _allowed(WIDE, ["2021-12-3"])[0] == {"0", "1"}
    assert _allowed(WIDE, ["2021-1"])[0] == {"0", "1", "2"}
    assert _allowed(WIDE, ["2021-0"])[0] == set("123456789")
    assert _allowed(WIDE, ["2021-02-0"])[0] == set("123456789")
    assert _allowed(WIDE, [""])[0] == {"1", "2"}
    assert _allowed(WIDE, ["1"])[0] == {"8", "9"}
    assert _allowed(WIDE, ["2"])[0] == {"0", "1"}
    assert _allowed(WIDE, ["2021"])[0] == {"-"}
    assert _allowed(WIDE, ["2021-03-03"])[0] == {"</s>"}
    assert _allowed(WIDE, ["2021-02-30"])[0] == set()  # no date starts so
    assert _allowed(WIDE, ["2021/"])[0] == set()
    eos = torch.tensor([[*TARGET.encode("2021-03-03"), TARGET.eos_id]])
    assert not WIDE(eos).any()  # nothing after the end


def test_constraint_parse() -> None:
    assert WIDE.parse("2000-02-29") == dt.date(2000, 2, 29)
    assert WIDE.first == dt.date(1800, 1, 1) and WIDE.last == dt.date(2199, 12, 31)
    for bad in ("2100-02-29", "2021-13-01", "2021-00-10", "1799-12-31", "2200-01-01", "20210303",
                "2021-3-3", " 2021-03-03", "1-01", None):
        assert WIDE.parse(bad) is None, bad


def test_constraint_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"argument `first_year` must be a four-digit year \(1000-9999\); got 999"):
        IsoDateConstraint(TARGET, 999, 2000)
    with pytest.raises(ValueError, match=r"argument `last_year` must be a four-digit year .*got '2000'"):
        IsoDateConstraint(TARGET, 1999, "2000")
    with pytest.raises(ValueError, match=r"`first_year`=2001 and `last_year`=2000 must satisfy first_year <= last_year"):
        IsoDateConstraint(TARGET, 2001, 2000)
    with pytest.raises(ValueError, match=r"argument `vocab` lacks the characters '-'"):
        IsoDateConstraint(Vocab("0123456789"), 1999, 2000)
    with pytest.raises(ValueError, match=r"argument `prefix` must be an int64 tensor of shape \(N, t\)"):
        WIDE(torch.zeros(3))
    with pytest.raises(ValueError, match=r"argument `prefix` holds token ids outside \[0, 15\); got 0..99"):
        WIDE(torch.tensor([[0, 99]]))


def _random_model(seed: int, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    kwargs = dict(src_vocab_size=20, tgt_vocab_size=len(TARGET), embed_dim=8, hidden_dim=8, attention_dim=8,
                  pad_id=TARGET.pad_id, bos_id=TARGET.bos_id, eos_id=TARGET.eos_id)
    model = Seq2Seq(Seq2SeqConfig(**{**kwargs, **overrides})).eval()
    with torch.no_grad():  # sharper, more varied next-token distributions than at initialisation
        model.decoder.out.weight.mul_(6.0)
    return model


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    beam_width=st.sampled_from([1, 2, 4]),
    input_feeding=st.booleans(),
    years=st.sampled_from([(1800, 2199), (1950, 2049), (2000, 2000), (1899, 1901)]),
)
def test_every_constrained_output_is_a_valid_date_in_range(seed, beam_width, input_feeding, years) -> None:
    model = _random_model(seed, input_feeding=input_feeding)
    constraint = IsoDateConstraint(TARGET, *years)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 20, (6, 9), generator=g)
    out = model.generate(src, torch.ones_like(src, dtype=torch.bool), beam_width=beam_width,
                         max_len=ISO_LENGTH + 1, constraint=constraint)
    for b, row in enumerate(out["tokens"].tolist()):
        assert row[ISO_LENGTH] == TARGET.eos_id
        date = dt.date.fromisoformat(TARGET.decode(row))
        assert dt.date(years[0], 1, 1) <= date <= dt.date(years[1], 12, 31)
        assert float(out["log_probs"][b]) <= float(out["constrained_log_probs"][b]) + 1e-5 <= 1e-5


def test_read_dates_refuses_what_an_untrained_model_cannot_read() -> None:
    source = Vocab("0123456789 abcdefghijklmnopqrstuvwxyz,")
    model = _random_model(0, src_vocab_size=len(source))
    texts = ["noon", "le 14 juillet 1789", "Jan 1 2100", "3rd of march, 2021"]
    readings, attentions = read_dates(model, texts, source, TARGET, 64, first_year=1950, last_year=2049,
                                      warn_unknown=False)
    assert [r.refused for r in readings] == [True] * 4
    assert readings[0].reason == "it has no number; a date writes at least the day and the year in digits"
    assert readings[1].reason == "the year 1789 is outside the supported years 1950-2049"
    assert readings[2].reason == "the year 2100 is outside the supported years 1950-2049"
    assert readings[3].reason.startswith(f"the model reads it as {readings[3].model_reading!r}")
    assert str(readings[0]).startswith("cannot read 'noon' as a date (it has no number;")
    (week,), _ = read_dates(model, ["week 12"], source, TARGET, 64, first_year=1950, last_year=2049)
    assert week.reason == "it has one number; a date writes at least the day and the year in digits"
    for reading, att in zip(readings, attentions, strict=True):
        assert dt.date.fromisoformat(reading.guess)  # a best valid guess is always there
        assert 0 <= reading.confidence <= reading.constrained_probability <= 1 + 1e-6
        assert att.shape[0] == ISO_LENGTH + 1
    loose, _ = read_dates(model, texts[3:], source, TARGET, 64, first_year=1950, last_year=2049,
                          beam_width=3, warn_unknown=False)
    assert loose[0].refused  # the model's own reading stays invalid whatever the search


def test_read_dates_rejects_bad_arguments() -> None:
    source = Vocab("0123456789 ")
    model = _random_model(0, src_vocab_size=len(source))
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(ValueError, match=r"argument `min_confidence` must be a probability in \[0, 1\]; got"):
            read_dates(model, ["1 1 2000"], source, TARGET, 64, first_year=1950, last_year=2049, min_confidence=bad)
    with pytest.raises(ValueError, match=r"empty date string"):
        read_dates(model, [" "], source, TARGET, 64, first_year=1950, last_year=2049)


def test_date_reading_strings() -> None:
    read = DateReading("3/3/21", "2021-03-03", 0.99871, "2021-03-03", "2021-03-03", 0.9991)
    assert str(read) == "2021-03-03 (confidence 0.999)" and not read.refused
    refused = DateReading(" noon ", None, 0.01, "1999-01-01", "1-01", 0.3, "it has no digits")
    assert str(refused) == "cannot read 'noon' as a date (it has no digits)" and refused.refused
    assert 0 < MIN_CONFIDENCE < 1


def test_no_supported_format_is_refused_by_the_rules_before_the_model() -> None:
    """Rules 1 and 2 refuse no generated date: every format writes two numbers, years in range."""
    from gicho.data.date_grammar import _refusal
    from gicho.data.dates import DateGenerator

    for ex in DateGenerator().generate(3000, seed="rules"):
        assert _refusal(ex.text, ex.iso, ex.iso, 1.0, WIDE, MIN_CONFIDENCE) is None, ex


@pytest.mark.parametrize(
    ("text", "iso", "ok"),
    [("31/02/2020", "2020-02-02", False), ("31/02/2020", "2020-03-02", False), ("3/4/2021", "2021-03-04", True),
     ("3/4/2021", "2021-04-03", True), ("93. 2. 20.", "1993-02-20", True), ("93. 2. 20.", "2093-02-20", False),
     ("3 mars 21", "2021-03-03", True), ("3 mars 21", "1921-03-03", False), ("3rd of March, 2021", "2021-03-03", True),
     ("3rd of March, 2021", "2021-03-04", False), ("le 1er mai 1999", "1999-05-01", True),
     ("2021년 3월 3일 (수)", "2021-03-03", True), ("2021년 3월 3일 (수)", "2021-05-03", False),
     ("Jan 1 2100", "2000-01-01", False), ("12:30", "2030-01-12", True)],  # a time: left to the confidence
)
def test_answers_must_match_the_numbers_the_input_writes(text: str, iso: str, ok: bool) -> None:
    from gicho.data.date_grammar import TWO_DIGIT_PIVOT, _matches_numbers
    from gicho.data.dates import TWO_DIGIT_YEARS

    assert _matches_numbers(text, iso) is ok
    assert TWO_DIGIT_YEARS == (1900 + TWO_DIGIT_PIVOT, 2000 + TWO_DIGIT_PIVOT - 1)  # the import-free copy
