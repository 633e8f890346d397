"""Human-written dates and their ISO form: the data of the attention seq2seq task.

:class:`DateGenerator` draws calendar dates with Faker and writes each one the way a person
would, in one of many formats and locales, with Babel's locale data (month and weekday names,
the CLDR ``full`` / ``long`` / ``medium`` / ``short`` patterns) plus hand-written patterns:
English ordinals ("3rd of March, 2021", "March 3rd 2021"), the French "1er", Korean
"2021년 3월 3일 (수)", numeric dates in the orders day-month-year, month-day-year and
year-month-day with the separators ``/``, ``-``, ``.`` and space. The target is always the
ISO 8601 date ``YYYY-MM-DD``.

Every input string has exactly one reading, so that 100% accuracy is attainable:

* Numeric day-month-year and month-day-year collide whenever the day is at most 12
  ("03/04/2021"). The generator reserves ``/`` for month/day/year (the US convention) and
  writes day-month-year with ``.``, ``-`` or a space; CLDR's ``dd/MM/y`` (en_GB, fr, es) is
  emitted as ``dd-MM-y``. Year-month-day always starts with a four-digit year (or is the
  Korean ``yy. M. d.``, whose spaces and final dot set it apart).
* Two-digit years pivot at 50: ``50``-``99`` mean 1950-1999 and ``00``-``49`` mean 2000-2049
  (:data:`TWO_DIGIT_YEARS`). Dates are drawn from 1800-01-01 to 2199-12-31 at most
  (:data:`DATE_RANGE`); a two-digit-year format only ever writes a date of 1950-2049 (its date
  is drawn in that window), so "3/3/21" still means 2021 and never 1921 or 2121, and these
  formats keep their share of the examples.

Generation is deterministic by seed; held-out splits come from seeds that training never uses
and exclude every input string that occurs in training (:func:`make_splits`). Each example
carries a locale tag, so accuracy can be reported per locale.

:class:`Vocab` maps characters to ids (padding, start, end and unknown tokens first) and is
saved as JSON; :class:`DateDataset` is the map-style torch Dataset with a padding collate.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from babel import Locale
from babel.dates import format_date
from faker import Faker

from gicho._validation import check_choice, check_positive, describe
from gicho.data.vocab import Vocab

__all__ = [
    "DATE_RANGE",
    "LOCALES",
    "TARGET_ALPHABET",
    "TWO_DIGIT_YEARS",
    "DateDataset",
    "DateExample",
    "DateFormat",
    "DateGenerator",
    "Vocab",
    "encode_source",
    "english_ordinal",
    "formats_for",
    "make_splits",
    "render_date",
    "showcase_examples",
    "translate",
]

LOCALES: tuple[str, ...] = ("en", "ko", "de", "fr", "es")
DATE_RANGE: tuple[_dt.date, _dt.date] = (_dt.date(1800, 1, 1), _dt.date(2199, 12, 31))
TWO_DIGIT_YEARS: tuple[int, int] = (1950, 2049)  # "50"-"99" -> 1950-1999, "00"-"49" -> 2000-2049
TARGET_ALPHABET = "0123456789-"
# Probabilities of writing a whole date in lower or upper case ("march 3, 2021").
LOWER_CASE_PROB = 0.1
UPPER_CASE_PROB = 0.05

# The CLDR locales whose named patterns each tag uses.
_BABEL_LOCALES: dict[str, tuple[str, ...]] = {
    "en": ("en_US", "en_GB"),
    "ko": ("ko_KR",),
    "de": ("de_DE",),
    "fr": ("fr_FR",),
    "es": ("es_ES",),
}
_NAMED = ("full", "long", "medium", "short")
# Hand-written Babel patterns per tag. ``{ord}`` is the English ordinal day ("3rd"),
# ``{d1er}`` the French day ("1er" for the first, else the number).
_EXTRA: dict[str, tuple[str, ...]] = {
    "en": (
        "{ord} 'of' MMMM, y", "{ord} 'of' MMMM y", "'the' {ord} 'of' MMMM y",
        "MMMM {ord} y", "MMMM {ord}, y", "MMM {ord}, y", "{ord} MMM y",
        "EEEE, MMMM {ord} y", "EEEE, MMMM {ord}, y", "EEEE {ord} MMMM y", "EEE {ord} MMM y",
        "MMMM d y", "d MMM, y", "EEE, d MMM y", "EEE MMM d y", "EEE, MMM d, y",
        "M/d/y", "MM/dd/y", "MM/dd/yy", "y-MM-dd",
    ),
    "ko": (
        "y년 M월 d일 (E)", "y년 MM월 dd일", "M월 d일 y년", "y/MM/dd", "y-M-d", "y.MM.dd",
        "y.M.d", "y MM dd",
    ),
    "de": (
        "EEEE, 'den' d. MMMM y", "'am' d. MMMM y", "d. MMM y", "EEE, d. MMM y", "d.M.y",
        "dd-MM-y", "d. MMMM yy", "y-MM-dd",
    ),
    "fr": (
        "{d1er} MMMM y", "'le' {d1er} MMMM y", "EEEE {d1er} MMMM y", "'le' EEEE {d1er} MMMM y",
        "d MMM y", "EEE d MMM y", "dd-MM-y", "dd MM y", "d.M.y",
    ),
    "es": (
        "EEEE d 'de' MMMM 'de' y", "d 'de' MMMM, y", "d 'de' MMM 'de' y", "EEE, d MMM y",
        "dd-MM-y", "d.M.y", "d-M-y", "dd MM y",
    ),
}


@dataclass(frozen=True)
class DateFormat:
    """One way of writing a date: a Babel pattern in a CLDR locale, under a locale tag.

    Attributes
    ----------
    tag : str
        The locale tag reported with each example (``"en"``, ``"ko"``, ...).
    babel_locale : str
        The CLDR locale whose month and weekday names Babel uses (``"en_GB"``).
    pattern : str
        A Babel/CLDR date pattern, possibly with ``{ord}`` or ``{d1er}`` placeholders.
    name : str
        A readable identifier (``"en_GB:full"`` or the pattern itself).
    """

    tag: str
    babel_locale: str
    pattern: str
    name: str

    @property
    def two_digit_year(self) -> bool:
        """Whether the pattern writes the year with two digits (``yy``, outside quoted text)."""
        return re.search(r"(?<!y)yy(?!y)", re.sub(r"'[^']*'", "", self.pattern)) is not None


@dataclass(frozen=True)
class DateExample:
    """A generated pair: ``text`` (human-written), ``iso`` (``YYYY-MM-DD``) and its origin."""

    text: str
    iso: str
    locale: str
    format: str


def english_ordinal(n: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``3 -> "3rd"``, ``11 -> "11th"``, ``22 -> "22nd"``."""
    check_positive(n, "n", integer=True)
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _unambiguous(pattern: str) -> str:
    """Rewrite a numeric day-first pattern with ``/`` to use ``-`` (``/`` means month first)."""
    if "MMM" in pattern or "/" not in pattern:
        return pattern
    if pattern.index("d") < pattern.index("M"):
        return pattern.replace("/", "-")
    return pattern


def formats_for(tag: str) -> tuple[DateFormat, ...]:
    """All the formats of one locale tag: CLDR's named patterns, then the hand-written ones.

    Parameters
    ----------
    tag : {"en", "ko", "de", "fr", "es"}

    Returns
    -------
    tuple of DateFormat
        Without duplicates, in a fixed order (generation depends on it).
    """
    check_choice(tag, "tag", LOCALES)
    seen: dict[tuple[str, str], DateFormat] = {}
    for babel_locale in _BABEL_LOCALES[tag]:
        patterns = Locale.parse(babel_locale).date_formats
        for name in _NAMED:
            pattern = _unambiguous(patterns[name].pattern)
            key = (babel_locale, pattern)
            seen.setdefault(key, DateFormat(tag, babel_locale, pattern, f"{babel_locale}:{name}"))
    for pattern in _EXTRA[tag]:
        babel_locale = _BABEL_LOCALES[tag][0]
        seen.setdefault((babel_locale, pattern), DateFormat(tag, babel_locale, pattern, pattern))
    return tuple(seen.values())


def render_date(date: _dt.date, fmt: DateFormat) -> str:
    """Write ``date`` in format ``fmt`` (no case change).

    Raises
    ------
    ValueError
        If ``fmt`` writes two-digit years and ``date`` lies outside :data:`TWO_DIGIT_YEARS`
        (its two digits would be read as another century).
    """
    if fmt.two_digit_year and not TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]:
        raise ValueError(f"format {fmt.name!r} writes two-digit years, which stand for "
                         f"{TWO_DIGIT_YEARS[0]}-{TWO_DIGIT_YEARS[1]} (pivot at 50); got the date {date}")
    pattern = fmt.pattern
    if "{ord}" in pattern:
        pattern = pattern.replace("{ord}", f"'{english_ordinal(date.day)}'")
    if "{d1er}" in pattern:
        pattern = pattern.replace("{d1er}", "'1er'" if date.day == 1 else "d")
    return format_date(date, pattern, locale=fmt.babel_locale)


class DateGenerator:
    """Draws (human-written date, ISO date) pairs.

    Each example picks a locale tag uniformly, then one of its formats uniformly, then a date
    uniformly in ``[start, end]`` (Faker), and writes the whole string in lower case with
    probability ``lower_case_prob`` or upper case with probability ``upper_case_prob``. A
    two-digit-year format draws its date uniformly in ``[start, end]`` within
    :data:`TWO_DIGIT_YEARS` instead; when that is empty, one of the tag's four-digit-year formats
    is drawn instead of it.

    Parameters
    ----------
    locales : sequence of str
        Locale tags among :data:`LOCALES`.
    start, end : datetime.date
        Inclusive date range, inside :data:`DATE_RANGE` (1800-2199; two-digit years pivot at 50).
    formats : sequence of DateFormat, optional
        Restrict generation to these formats (their tags must be in ``locales``); default:
        every format of every locale (:func:`formats_for`).
    lower_case_prob, upper_case_prob : float
        Probabilities of the case changes; their sum must be at most 1.
    """

    def __init__(
        self,
        locales: Sequence[str] = LOCALES,
        start: _dt.date = DATE_RANGE[0],
        end: _dt.date = DATE_RANGE[1],
        formats: Sequence[DateFormat] | None = None,
        lower_case_prob: float = LOWER_CASE_PROB,
        upper_case_prob: float = UPPER_CASE_PROB,
    ) -> None:
        if isinstance(locales, str):
            locales = [part.strip() for part in locales.split(",") if part.strip()]
        if not locales:
            raise ValueError(f"argument `locales` is empty; choose from {', '.join(LOCALES)}")
        for tag in locales:
            check_choice(tag, "locales", LOCALES)
        if not DATE_RANGE[0] <= start <= end <= DATE_RANGE[1]:
            raise ValueError(
                f"arguments `start`={start} and `end`={end} must satisfy "
                f"{DATE_RANGE[0]} <= start <= end <= {DATE_RANGE[1]} (two-digit years pivot at 50)"
            )
        if not (0 <= lower_case_prob and 0 <= upper_case_prob and lower_case_prob + upper_case_prob <= 1):
            raise ValueError(
                f"arguments `lower_case_prob`={lower_case_prob} and `upper_case_prob`="
                f"{upper_case_prob} must be >= 0 with a sum <= 1"
            )
        self.locales = tuple(dict.fromkeys(locales))
        self.start, self.end = start, end
        self.lower_case_prob, self.upper_case_prob = lower_case_prob, upper_case_prob
        by_tag: dict[str, list[DateFormat]] = {tag: [] for tag in self.locales}
        for fmt in formats if formats is not None else [f for t in self.locales for f in formats_for(t)]:
            if fmt.tag not in by_tag:
                raise ValueError(f"format {fmt.name!r} has tag {fmt.tag!r}, not among `locales` {self.locales}")
            by_tag[fmt.tag].append(fmt)
        empty = [tag for tag, fmts in by_tag.items() if not fmts]
        if empty:
            raise ValueError(f"no formats given for locale(s) {', '.join(empty)}")
        self.formats = by_tag
        self.four_digit_formats = {tag: [f for f in fmts if not f.two_digit_year] for tag, fmts in by_tag.items()}
        window = (max(start, _dt.date(TWO_DIGIT_YEARS[0], 1, 1)), min(end, _dt.date(TWO_DIGIT_YEARS[1], 12, 31)))
        self.two_digit_window = window if window[0] <= window[1] else None
        only_two = [tag for tag, fmts in self.four_digit_formats.items() if not fmts]
        if self.two_digit_window is None and only_two:
            raise ValueError(f"the formats of locale(s) {', '.join(only_two)} all write two-digit years, which "
                             f"stand for {TWO_DIGIT_YEARS[0]}-{TWO_DIGIT_YEARS[1]}; arguments `start`={start} and "
                             f"`end`={end} lie outside: add a four-digit-year format or change the range")

    def generate(self, n: int, seed: int | str) -> list[DateExample]:
        """``n`` examples, the same for the same ``seed`` (an int or a string).

        Reproducible for fixed versions of Faker and Babel (their random draws and locale
        data may change between releases).

        Parameters
        ----------
        n : int
            Number of examples (>= 0).
        seed : int or str
            Seeds Faker's and the format choice's random generator.

        Returns
        -------
        list of DateExample
        """
        check_positive(n, "n", strict=False, integer=True)
        if not isinstance(seed, (int, str)) or isinstance(seed, bool):
            raise TypeError(f"argument `seed` must be an int or a str; got {describe(seed)}")
        faker = Faker()
        faker.seed_instance(f"dates:{seed}")
        rng = random.Random(f"formats:{seed}")
        examples = []
        for _ in range(n):
            tag = rng.choice(self.locales)
            fmt = rng.choice(self.formats[tag])
            if fmt.two_digit_year and self.two_digit_window is None:
                fmt = rng.choice(self.four_digit_formats[tag])
            window = self.two_digit_window if fmt.two_digit_year else (self.start, self.end)
            date = faker.date_between_dates(*window)
            text = render_date(date, fmt)
            u = rng.random()
            if u < self.lower_case_prob:
                text = text.lower()
            elif u < self.lower_case_prob + self.upper_case_prob:
                text = text.upper()
            examples.append(DateExample(text, date.isoformat(), tag, fmt.name))
        return examples


def make_splits(
    n_train: int,
    n_valid: int,
    n_test: int,
    seed: int = 0,
    generator: DateGenerator | None = None,
) -> dict[str, list[DateExample]]:
    """Training, validation and held-out test sets from three disjoint seeds.

    The validation and test sets are drawn with the seeds ``"{seed}:valid"`` and
    ``"{seed}:test"`` (training uses ``"{seed}:train"``) and drop every example whose input
    string occurs in the training set, so they measure generalisation to unseen strings.
    Held-out sets are topped up from further draws until they have the requested size.

    Returns
    -------
    dict
        ``{"train": [...], "valid": [...], "test": [...]}``.
    """
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        check_positive(value, name, integer=True)
    generator = generator or DateGenerator()
    train = generator.generate(n_train, f"{seed}:train")
    seen = {ex.text for ex in train}
    splits: dict[str, list[DateExample]] = {"train": train}
    for split, size in (("valid", n_valid), ("test", n_test)):
        kept: list[DateExample] = []
        for attempt in range(100):
            draw = generator.generate(size, f"{seed}:{split}:{attempt}" if attempt else f"{seed}:{split}")
            kept.extend(ex for ex in draw if ex.text not in seen)
            if len(kept) >= size:
                break
        else:  # only when the space of strings is too small for the held-out sizes
            raise ValueError(f"could not draw {size} {split} examples unseen in training")
        splits[split] = kept[:size]
        seen.update(ex.text for ex in splits[split])
    return splits


def encode_source(text: str, vocab: Vocab, max_len: int, warn_unknown: bool = True) -> list[int]:
    """Check and encode one human-written date for the encoder.

    Surrounding whitespace is stripped. Characters outside ``vocab`` become the unknown token
    (with a ``UserWarning`` naming them when ``warn_unknown``).

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If ``text`` is empty (after stripping), or longer than ``max_len`` characters:
        truncating a date would silently drop its year, so it is refused.
    """
    if not isinstance(text, str):
        raise TypeError(f"a date must be a string; got {describe(text)}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty date string {text!r}; write a date such as '3rd of March, 2021'")
    if len(stripped) > max_len:
        raise ValueError(
            f"date string {describe(stripped)} has {len(stripped)} characters; the model reads at "
            f"most max_input_len={max_len} (it is not truncated, which could drop the year)"
        )
    unknown = vocab.unknown(stripped)
    if unknown and warn_unknown:
        warnings.warn(
            f"characters {''.join(unknown)!r} of {stripped!r} are not in the vocabulary; "
            "they are read as the unknown token <unk>",
            UserWarning,
            stacklevel=2,
        )
    return vocab.encode(stripped)


def translate(model: Any, texts: Sequence[str], source: Vocab, target: Vocab, max_input_len: int, *,
              beam_width: int = 1, length_penalty: float = 1.0, batch_size: int = 500,
              warn_unknown: bool = True) -> tuple[list[str], list[torch.Tensor]]:
    """Decode human-written dates with a trained :class:`gicho.models.seq2seq.Seq2Seq`.

    Every input is checked (:func:`encode_source`) before any is decoded. Returns the output
    strings and each one's attention weights (T_out, S) on the CPU.
    """
    encoded = [encode_source(text, source, max_input_len, warn_unknown) for text in texts]
    device = next(model.parameters()).device
    outputs, attentions = [], []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            src = torch.full((len(chunk), max(len(ids) for ids in chunk)), source.pad_id, dtype=torch.long)
            for i, ids in enumerate(chunk):
                src[i, : len(ids)] = torch.tensor(ids)
            out = model.generate(src.to(device), (src != source.pad_id).to(device),
                                 beam_width=beam_width, length_penalty=length_penalty)
            for i, row in enumerate(out["tokens"].cpu().tolist()):
                n = row.index(target.eos_id) + 1 if target.eos_id in row else len(row)
                outputs.append(target.decode(row))
                attentions.append(out["attentions"][i, :n, : len(chunk[i])].float().cpu())
    return outputs, attentions


def showcase_examples(examples: Sequence[DateExample], n: int) -> list[int]:
    """Indices of ``n`` examples for figures: one locale after another, written-out months
    first (the more telling attention maps)."""
    by_locale: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_locale.setdefault(ex.locale, []).append(i)
    queues = [sorted(idx, key=lambda i: not any(c.isalpha() for c in examples[i].text)) for idx in by_locale.values()]
    longest = max(map(len, queues), default=0)
    return [q[k] for k in range(longest) for q in queues if k < len(q)][:n]


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DateDataset(torch.utils.data.Dataset):
    """Encoded date pairs for the seq2seq model (map-style; use :meth:`collate` to batch).

    Parameters
    ----------
    examples : sequence of DateExample
    source_vocab, target_vocab : Vocab
    max_input_len : int
        Longest accepted input (see :func:`encode_source`).

    Items are ``{"src": (S,) int64, "tgt": (T + 1,) int64}``, ``tgt`` ending with the end
    token. :meth:`collate` returns the batch the model takes:
    ``src (B, S)``, ``src_mask (B, S)`` bool (True = a real character), ``tgt_in (B, T + 1)``
    (start token, then the target shifted right) and ``labels (B, T + 1)`` (-100 = padding).
    """

    def __init__(
        self, examples: Sequence[DateExample], source_vocab: Vocab, target_vocab: Vocab, max_input_len: int
    ) -> None:
        check_positive(max_input_len, "max_input_len", integer=True)
        self.examples = list(examples)
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.items = []
        for ex in self.examples:
            if not _ISO.match(ex.iso):
                raise ValueError(f"target {ex.iso!r} is not an ISO date YYYY-MM-DD")
            src = encode_source(ex.text, source_vocab, max_input_len, warn_unknown=False)
            tgt = target_vocab.encode(ex.iso, add_eos=True)
            self.items.append((torch.tensor(src), torch.tensor(tgt)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        src, tgt = self.items[index]
        return {"src": src, "tgt": tgt}

    def collate(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Pad a list of items into one batch (see the class docstring for the keys)."""
        pad = torch.nn.utils.rnn.pad_sequence
        src = pad([it["src"] for it in items], batch_first=True, padding_value=self.source_vocab.pad_id)
        lengths = torch.tensor([len(it["src"]) for it in items])
        src_mask = torch.arange(src.shape[1])[None, :] < lengths[:, None]  # (B, S)
        tgt = [it["tgt"] for it in items]
        bos = torch.tensor([self.target_vocab.bos_id])
        tgt_in = pad([torch.cat([bos, t[:-1]]) for t in tgt], batch_first=True,
                     padding_value=self.target_vocab.pad_id)
        labels = pad(tgt, batch_first=True, padding_value=-100)
        return {"src": src, "src_mask": src_mask, "tgt_in": tgt_in, "labels": labels}
