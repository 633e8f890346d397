"""Studies: experiments over tasks and models, each one claim measured over many small runs.

* :mod:`gicho.studies.pooling`: mean vs [CLS] pooling as sequences grow (``gicho study pooling``);
* :mod:`gicho.studies.data_size`: a ViT vs a CNN of similar size vs PCA + logistic regression on
  growing shares of the digits (``gicho study data-size``);
* :mod:`gicho.studies.pretraining`: fine-tuning BERT from random, gicho's MLM-pretrained and
  MiniLM weights at growing numbers of labels (``gicho study pretraining``).

Each writes ``<stem>.csv`` and ``<stem>.json`` (:func:`write_study_tables`) and its figure
(:mod:`gicho.plots.studies`). Studies sit above the runs (they may use tasks, runs and the run
directory) and below the CLI; nothing but the CLI imports them. This package imports none of its
studies (nor torch) until one is used.
"""

from __future__ import annotations

from gicho.studies._tables import write_study_tables

__all__ = ["write_study_tables"]
