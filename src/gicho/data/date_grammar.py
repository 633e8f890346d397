"""Only valid answers from the dates model: the ISO-date grammar, confidence and refusal.

:class:`IsoDateConstraint` is the grammar of ``YYYY-MM-DD`` over the target vocabulary, for
constrained decoding (``Seq2Seq.generate(..., constraint=...)``): given the tokens decoded so
far it says which tokens may come next, so that every output is a real calendar date (month
01-12, the day valid for that month and year, leap years included) within the supported years.
It is exact: a prefix may be continued by a character if and only if some date of the range
starts with the prefix followed by that character (a sorted table of the range's dates,
``YYYYMMDD`` as integers, and a binary search per candidate).

:func:`read_dates` decodes human-written dates twice: once freely (the model's own reading)
and once constrained to valid dates. Each input gets a :class:`DateReading`: the valid date
with its confidence, or a refusal that says why. The refusal rules, checked in this order:

1. the input holds fewer than two numbers (every supported format writes at least the day and
   the year in digits, so "tomorrow", "noon", "yesterday" or "week 12" are no dates the model
   can read; a tour-budget model reads "yesterday" as 2002-09-09 with confidence 0.74);
2. it holds a four-digit number outside the supported years (``le 14 juillet 1789``): the
   model never saw such a year and would move it into the range;
3. the model's own (unconstrained, greedy) reading is not a valid date of the range
   (``February 30, 2021`` read as ``2021-02-30``): forcing a valid one would be a guess;
4. the confidence of the constrained answer is below ``min_confidence``;
5. the answer disagrees with the numbers the input writes: its year, day and (when the input
   writes three numbers or more) month must each be a different one of them, the year written
   with four digits, or with two that pivot at 50 to it ("93" is 1993). A small model read the
   impossible ``31/02/2020`` as 2020-03-02 with confidence 0.99, another as 2020-02-02;
6. a ``month/day/year`` input (``/`` with the year last) read in another order: the model
   read the impossible ``31/12/2020`` (month 31) as 2020-12-31 with confidence 0.82.

The confidence is the probability that the model, unconstrained, gives exactly this answer:
``exp(Σ_t log p(y_t | y_<t, x))`` over the answer's tokens, end token included.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gicho._validation import check_positive, describe

__all__ = ["ISO_LENGTH", "MIN_CONFIDENCE", "DateReading", "IsoDateConstraint", "read_dates"]

ISO_LENGTH = 10  # characters of YYYY-MM-DD
_DASH_POSITIONS = (4, 7)
_N_DIGITS = 8  # digits of YYYYMMDD
_DASH = 10  # the value of "-" in the character table (digits are 0-9, anything else -1)
# Refuse an answer the model itself gives with probability below this (see the README for the
# measured false-refusal rate on held-out dates and the refusal rate on impossible ones).
MIN_CONFIDENCE = 0.5
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEAR_LIKE = re.compile(r"(?<!\d)\d{4}(?!\d)")
_NUMBER = re.compile(r"\d+")
# "3/4/2021": with "/" and the year last, the generator (and so the model) writes month/day/year
_SLASH_MDY = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\s*")
TWO_DIGIT_PIVOT = 50  # "50"-"99" are 1950-1999, "00"-"49" 2000-2049 (gicho.data.dates.TWO_DIGIT_YEARS)


class IsoDateConstraint:
    """Which target tokens may continue a valid ``YYYY-MM-DD`` in ``[first_year, last_year]``.

    Parameters
    ----------
    vocab : gicho.data.dates.Vocab
        The target vocabulary; it must hold the digits, ``-`` and the end token ``eos_id``.
    first_year, last_year : int
        The supported years (inclusive), four-digit: ``1000 <= first_year <= last_year <= 9999``.

    Notes
    -----
    Call it with the tokens decoded so far, ``prefix`` of shape (N, t) int64 (no start
    token); it returns the allowed next tokens, (N, V) bool. After ten characters only the end
    token is allowed; a prefix that no valid date starts with (or one holding the end token)
    allows nothing.
    """

    def __init__(self, vocab: Any, first_year: int, last_year: int) -> None:
        for name, year in (("first_year", first_year), ("last_year", last_year)):
            if isinstance(year, bool) or not isinstance(year, int) or not 1000 <= year <= 9999:
                raise ValueError(f"argument `{name}` must be a four-digit year (1000-9999); got {describe(year)}")
        if first_year > last_year:
            raise ValueError(f"arguments `first_year`={first_year} and `last_year`={last_year} must satisfy "
                             "first_year <= last_year")
        missing = [c for c in "0123456789-" if c not in vocab]
        if missing:
            raise ValueError(f"argument `vocab` lacks the characters {''.join(missing)!r} of ISO dates")
        self.vocab, self.first_year, self.last_year = vocab, first_year, last_year
        self.eos_id, self.size = vocab.eos_id, len(vocab)
        self._digit_ids = torch.tensor([vocab.stoi[str(d)] for d in range(10)])  # (10,)
        self._dash_id = vocab.stoi["-"]
        values = torch.full((self.size,), -1, dtype=torch.long)  # token id -> 0-9, _DASH or -1
        values[self._digit_ids] = torch.arange(10)
        values[self._dash_id] = _DASH
        self._values = values
        days = np.arange(f"{first_year:04d}-01-01", f"{last_year + 1:04d}-01-01", dtype="datetime64[D]")
        months = days.astype("datetime64[M]")
        year = months.astype("datetime64[Y]").astype(np.int64) + 1970
        codes = year * 10_000 + (months.astype(np.int64) % 12 + 1) * 100 + (days - months).astype(np.int64) + 1
        self._codes = torch.from_numpy(codes)  # (n_dates,) sorted YYYYMMDD

    def __repr__(self) -> str:
        return f"IsoDateConstraint({self.first_year}-{self.last_year}, {len(self._codes)} dates)"

    @property
    def first(self) -> _dt.date:
        return _dt.date(self.first_year, 1, 1)

    @property
    def last(self) -> _dt.date:
        return _dt.date(self.last_year, 12, 31)

    def parse(self, text: str) -> _dt.date | None:
        """The date ``text`` writes as ``YYYY-MM-DD`` within the supported years, else None."""
        if not isinstance(text, str) or not _ISO.fullmatch(text):
            return None
        try:
            date = _dt.date.fromisoformat(text)
        except ValueError:
            return None
        return date if self.first <= date <= self.last else None

    def _extendable(self, number: Tensor, n_digits: int) -> Tensor:
        """Whether some date's ``YYYYMMDD`` starts with the ``n_digits`` digits of ``number`` (any shape)."""
        scale = 10 ** (_N_DIGITS - n_digits)
        low, high = number * scale, (number + 1) * scale - 1
        codes = self._codes.to(number.device)
        index = torch.searchsorted(codes, low).clamp(max=len(codes) - 1)
        return (codes[index] >= low) & (codes[index] <= high)

    def __call__(self, prefix: Tensor) -> Tensor:
        """The tokens allowed after each prefix.

        Parameters
        ----------
        prefix : Tensor, int64, shape (N, t)
            Tokens decoded so far, without the start token.

        Returns
        -------
        Tensor, bool, shape (N, V)
        """
        if not isinstance(prefix, Tensor) or prefix.ndim != 2 or prefix.dtype != torch.long:
            raise ValueError(f"argument `prefix` must be an int64 tensor of shape (N, t); got {describe(prefix)}")
        N, t = prefix.shape
        device = prefix.device
        allowed = torch.zeros(N, self.size, dtype=torch.bool, device=device)
        if t > ISO_LENGTH:
            return allowed
        if prefix.numel() and (int(prefix.min()) < 0 or int(prefix.max()) >= self.size):
            raise ValueError(f"argument `prefix` holds token ids outside [0, {self.size}); "
                             f"got {int(prefix.min())}..{int(prefix.max())}")
        values = self._values.to(device)[prefix]  # (N, t)
        dash = torch.tensor([p in _DASH_POSITIONS for p in range(t)], dtype=torch.bool, device=device)  # (t,)
        ok = torch.where(dash, values == _DASH, (values >= 0) & (values < _DASH)).all(dim=1)  # (N,)
        digits = values[:, ~dash].clamp(min=0)  # (N, k)
        k = digits.shape[1]
        powers = 10 ** torch.arange(k - 1, -1, -1, device=device)  # (k,)
        number = (digits * powers).sum(dim=1)  # (N,)
        ok &= self._extendable(number, k)
        if t == ISO_LENGTH:
            allowed[:, self.eos_id] = ok
        elif t in _DASH_POSITIONS:
            allowed[:, self._dash_id] = ok
        else:
            candidates = number[:, None] * 10 + torch.arange(10, device=device)  # (N, 10)
            allowed[:, self._digit_ids.to(device)] = ok[:, None] & self._extendable(candidates, k + 1)
        return allowed


@dataclass(frozen=True)
class DateReading:
    """What :func:`read_dates` made of one input.

    Attributes
    ----------
    text : str
        The input as given.
    date : str or None
        The valid ISO date ``YYYY-MM-DD``, or None when refused.
    confidence : float
        Probability that the unconstrained model gives exactly ``guess`` (end token included).
    guess : str
        The best valid date under the constraint (also when refused).
    model_reading : str
        The model's own unconstrained greedy output (may be no date at all).
    constrained_probability : float
        Probability of ``guess`` under the constrained, renormalised distribution; the mass the
        constraint removed along the way is ``1 - confidence / constrained_probability``.
    reason : str or None
        Why the input was refused (None when it was read).
    """

    text: str
    date: str | None
    confidence: float
    guess: str
    model_reading: str
    constrained_probability: float
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.date is None

    def __str__(self) -> str:
        """``"2021-03-03 (confidence 0.998)"`` or ``"cannot read 'noon' as a date (<reason>)"``."""
        if self.date is None:
            return f"cannot read {self.text.strip()!r} as a date ({self.reason})"
        return f"{self.date} (confidence {self.confidence:.3f})"


def _refusal(text: str, guess: str, model_reading: str, confidence: float,
             constraint: IsoDateConstraint, min_confidence: float) -> str | None:
    """The first refusal rule of the module docstring that applies, or None."""
    years = f"{constraint.first_year}-{constraint.last_year}"
    n_numbers = len(_NUMBER.findall(text))
    if n_numbers < 2:
        found = "no number" if n_numbers == 0 else "one number"
        return f"it has {found}; a date writes at least the day and the year in digits"
    numbers = [int(m) for m in _YEAR_LIKE.findall(text)]
    outside = [n for n in numbers if not constraint.first_year <= n <= constraint.last_year]
    if outside:
        return f"the year {outside[0]} is outside the supported years {years}"
    if constraint.parse(model_reading) is None:
        if _ISO.fullmatch(model_reading) and _valid_calendar(model_reading):
            return f"the model reads it as {model_reading!r}, outside the supported years {years}"
        return f"the model reads it as {model_reading!r}, which is not a valid date"
    if confidence < min_confidence:
        return f"confidence {confidence:.3f} of its best reading {guess} is below min_confidence={min_confidence}"
    if not _matches_numbers(text, guess):
        shown = ", ".join(_NUMBER.findall(text))
        return f"the model reads it as {guess}, which does not match the numbers it writes ({shown})"
    slash = _SLASH_MDY.fullmatch(text)
    if slash and (int(guess[5:7]), int(guess[8:10])) != (int(slash[1]), int(slash[2])):
        return (f"the model reads it as {guess}, but with '/' a date is month/day/year "
                f"(month {int(slash[1])}, day {int(slash[2])})")
    return None


def _matches_numbers(text: str, iso: str) -> bool:
    """Whether the year, day (and month, with three numbers or more) of ``iso`` are distinct numbers of ``text``."""
    written = _NUMBER.findall(text)
    year, month, day = (int(part) for part in iso.split("-"))
    four = any(len(s) == 4 for s in written)
    pivot = TWO_DIGIT_PIVOT
    wanted = {"year": year, "month": month, "day": day}

    def fits(s: str, part: str) -> bool:
        if part != "year":
            return len(s) <= 2 and int(s) == wanted[part]
        if len(s) == 4:
            return int(s) == year
        return not four and len(s) == 2 and int(s) + (1900 if int(s) >= pivot else 2000) == year

    parts = ("year", "month", "day") if len(written) >= 3 else ("year", "day")
    return any(all(fits(written[i], part) for i, part in zip(order, parts, strict=True))
               for order in itertools.permutations(range(len(written)), len(parts)))


def _valid_calendar(text: str) -> bool:
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def read_dates(model: Any, texts: Sequence[str], source: Any, target: Any, max_input_len: int, *,
               first_year: int, last_year: int, min_confidence: float = MIN_CONFIDENCE,
               beam_width: int = 1, length_penalty: float = 1.0, batch_size: int = 500,
               warn_unknown: bool = True) -> tuple[list[DateReading], list[Tensor]]:
    """Read human-written dates with a trained seq2seq: a valid date with its confidence, or a refusal.

    Parameters
    ----------
    model : gicho.models.seq2seq.Seq2Seq
    texts : sequence of str
        Every one is checked (:func:`gicho.data.dates.encode_source`) before any is decoded.
    source, target : gicho.data.dates.Vocab
    max_input_len : int
    first_year, last_year : int
        The supported years (those the model was trained on).
    min_confidence : float
        Refuse answers whose confidence is below this, in [0, 1].
    beam_width, length_penalty : decoding of the constrained answer (greedy when 1).
    batch_size : int
    warn_unknown : bool
        Warn about characters outside ``source``.

    Returns
    -------
    readings : list of DateReading
    attentions : list of Tensor, each (T_out, S)
        The attention weights of each constrained answer, on the CPU.
    """
    from gicho.data.dates import encode_source

    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
            or not 0 <= min_confidence <= 1:
        raise ValueError(f"argument `min_confidence` must be a probability in [0, 1]; got {describe(min_confidence)}")
    check_positive(batch_size, "batch_size", integer=True)
    constraint = IsoDateConstraint(target, first_year, last_year)
    encoded = [encode_source(text, source, max_input_len, warn_unknown) for text in texts]
    device = next(model.parameters()).device
    readings, attentions = [], []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        src = torch.full((len(chunk), max(len(ids) for ids in chunk)), source.pad_id, dtype=torch.long)
        for i, ids in enumerate(chunk):
            src[i, : len(ids)] = torch.tensor(ids)
        src, mask = src.to(device), (src != source.pad_id).to(device)
        free = model.generate(src, mask)
        bound = model.generate(src, mask, beam_width=beam_width, length_penalty=length_penalty,
                               max_len=max(ISO_LENGTH + 1, model.config.max_target_len), constraint=constraint)
        for i, (own, row) in enumerate(zip(free["tokens"].tolist(), bound["tokens"].tolist(), strict=True)):
            text = texts[start + i]
            n = row.index(target.eos_id) + 1 if target.eos_id in row else len(row)
            guess, model_reading = target.decode(row), target.decode(own)
            confidence = float(torch.exp(bound["log_probs"][i]))
            reason = _refusal(text, guess, model_reading, confidence, constraint, min_confidence)
            if reason is None and constraint.parse(guess) is None:  # never trust the decoder blindly
                reason = f"the constrained answer {guess!r} is not a valid date"
            readings.append(DateReading(text, None if reason else guess, confidence, guess, model_reading,
                                        float(torch.exp(bound["constrained_log_probs"][i])), reason))
            attentions.append(bound["attentions"][i, :n, : len(chunk[i])].float().cpu())
    return readings, attentions
