"""The data part of the ``dates`` task's config: locales, split sizes, seed, supported years.

Import-free on purpose (no torch, Faker or Babel), so that listing tasks stays fast; the
constants equal those of :mod:`gicho.data.dates` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LOCALES", "MAX_EXAMPLES", "SUPPORTED_YEARS", "DatesData"]

LOCALES = ("en", "ko", "de", "fr", "es")  # = gicho.data.dates.LOCALES (kept import-free; tested)
SUPPORTED_YEARS = (1800, 2199)  # = gicho.data.dates.DATE_RANGE's years (kept import-free; tested)
MAX_EXAMPLES = 5_000_000  # a larger split would take hours to generate: a typo, not a wish


@dataclass
class DatesData:
    """Generated data: ``locales`` (comma-separated subset of en,ko,de,fr,es), split sizes, seed."""

    locales: str = field(default="en,ko,de,fr,es", metadata={"help": "comma-separated locales"})
    n_train: int = field(default=50_000, metadata={"help": "training pairs"})
    n_valid: int = field(default=1_000, metadata={"help": "validation pairs (select the checkpoint)"})
    n_test: int = field(default=5_000, metadata={"help": "held-out test pairs"})
    data_seed: int = field(default=0, metadata={"help": "seed of the generator"})
    max_input_len: int = field(default=64, metadata={"help": "longest input string accepted"})
    first_year: int = field(default=SUPPORTED_YEARS[0], metadata={
        "help": f"first supported year (>= {SUPPORTED_YEARS[0]}): trained on, and predict answers no earlier"})
    last_year: int = field(default=SUPPORTED_YEARS[1], metadata={
        "help": f"last supported year (<= {SUPPORTED_YEARS[1]}); two-digit years pivot at 50 (21 -> 2021)"})

    def __post_init__(self) -> None:
        if not self.tags or any(tag not in LOCALES for tag in self.tags):
            raise ValueError(f"field `locales` must be a comma-separated subset of {','.join(LOCALES)}; "
                             f"got {self.locales!r}")
        for name in ("n_train", "n_valid", "n_test", "max_input_len"):
            value = getattr(self, name)
            if value < 1 or value > MAX_EXAMPLES:
                bound = ">= 1" if value < 1 else f"<= {MAX_EXAMPLES} (generating more would take hours)"
                raise ValueError(f"field `{name}` must be {bound}; got {value!r}")
        low, high = SUPPORTED_YEARS
        if not low <= self.first_year <= self.last_year <= high:
            raise ValueError(f"fields `first_year`={self.first_year!r} and `last_year`={self.last_year!r} must "
                             f"satisfy {low} <= first_year <= last_year <= {high}")

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.locales.split(",") if part.strip())
