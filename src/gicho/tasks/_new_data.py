"""Score a trained classifier on new labelled data: ``gicho evaluate RUN --data.csv FILE | --data.root DIR``.

A run's own ``evaluate`` rescores its held-out split. New data goes through the predictor
instead (:meth:`gicho.tasks.neural.Predictor.predict_proba`), so that it is read exactly as
``predict`` reads an input, with the run's own preprocessing (its tokenizer, its image
processor, its scaling), and its labels are matched to the model's label names by name:

* ``csv``: a CSV file of labelled texts (``text,label`` or ``text_a,text_b,label``, as
  ``bert-classify --data.csv`` trains on), for the text classifiers;
* ``root``: a folder of class folders (``root/<label>/*.png``), for the image classifiers; a
  class folder must be named as one of the model's labels.

The scores are the test split's: accuracy, and per-class accuracy ``accuracy_<label>`` for the
labels present, with ``n_examples``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SOURCES", "labelled_inputs", "score_new_data"]

# What each kind of source is, for the messages.
SOURCES = {"csv": "a CSV file of labelled texts (text,label or text_a,text_b,label)",
           "root": "a folder of class folders of images (root/<label>/*.png)"}


def score_new_data(predictor: Any, data: Mapping[str, str]) -> dict[str, float]:
    """Accuracy (and per-class accuracy) of ``predictor`` on the labelled data that ``data`` names
    (one of ``{"csv": path}`` / ``{"root": path}``, as the task's ``new_data_sources`` allow)."""
    import numpy as np

    task = predictor.task
    allowed = tuple(getattr(task, "new_data_sources", ()))
    if len(data) != 1:
        raise ValueError(f"give one source of new data; got {sorted(data) or 'none'}")
    ((kind, path),) = data.items()
    if kind not in allowed:
        if not allowed:
            raise ValueError(f"task {task.name!r} cannot score new data (only classifiers of texts or images can: "
                             f"{', '.join(f'--data.{k}' for k in SOURCES)}); `gicho evaluate RUN` rescores its "
                             "held-out split")
        raise ValueError(f"--data.{kind}: task {task.name!r} scores new data from "
                         f"{' or '.join(f'--data.{k} ({SOURCES[k]})' for k in allowed)}")
    names = list(predictor.classes_)
    inputs, labels = labelled_inputs(kind, Path(path), names)
    probs = predictor.predict_proba(inputs)
    predicted = probs.argmax(1)
    truth = np.asarray(labels)
    scores = {"accuracy": float(np.mean(predicted == truth)), "n_examples": len(truth)}
    for index in sorted(set(labels)):
        here = truth == index
        scores[f"accuracy_{names[index]}"] = float(np.mean(predicted[here] == index))
    return scores


def labelled_inputs(kind: str, path: Path, names: Sequence[str]) -> tuple[list[Any], list[int]]:
    """The inputs (texts, pairs, image paths) and label indices (into ``names``) that ``path`` holds."""
    if kind == "csv":
        return _csv_texts(path, names)
    return _image_folder(path, names)


def _csv_texts(path: Path, names: Sequence[str]) -> tuple[list[Any], list[int]]:
    from gicho.data.text.labelled_csv import read_text_csv

    examples, _ = read_text_csv(path, names)  # a label outside the model's names is an error there
    if not examples:
        raise ValueError(f"--data.csv {path} has no rows")
    inputs = [ex.text if ex.text_pair is None else (ex.text, ex.text_pair) for ex in examples]
    return inputs, [ex.label for ex in examples]


def _image_folder(root: Path, names: Sequence[str]) -> tuple[list[Any], list[int]]:
    from gicho.data.image_folder import IMAGE_SUFFIXES, image_files

    if not root.is_dir():
        raise ValueError(f"--data.root {root}: no such folder" if not root.exists()
                         else f"--data.root {root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"--data.root {root} has no class folders (root/<label>/*.png)")
    unknown = [p.name for p in folders if p.name not in names]
    if unknown:
        raise ValueError(f"--data.root {root}: class folder(s) {unknown[:5]} are not labels of the model; its labels: "
                         f"{', '.join(names)}")
    inputs: list[Any] = []
    labels: list[int] = []
    for folder in folders:
        files = image_files(folder)
        if not files:
            raise ValueError(f"--data.root {root}: class folder {folder.name!r} has no image files "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        inputs += files
        labels += [list(names).index(folder.name)] * len(files)
    return inputs, labels
