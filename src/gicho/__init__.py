"""gicho (기초, "foundations"): the foundations of machine learning as verified software.

The public names below are imported on first use (PEP 562), so ``import gicho`` stays fast
and does not import torch, scikit-learn or SciPy until a function that needs them is used::

    from gicho import softmax, r2, kl_divergence, LinearRegression, PCA

Neural pieces live in their sub-packages: ``gicho.nn`` (attention, the encoder backbone),
``gicho.models`` (seq2seq, classifiers), ``gicho.train`` (the Trainer), ``gicho.tasks``.
``gicho.load(run_dir)`` reloads a trained model with its preprocessing::

    gicho.load("runs/digits-rows-20261130-120000").predict(["0 0 5 13 9 1 0 0 ..."])
"""

from __future__ import annotations

from gicho._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("softmax", "log_softmax", "logsumexp"), "gicho.numerics"),
    **dict.fromkeys(
        ("mae", "mse", "rmse", "r2", "adjusted_r2", "r2_components", "accuracy",
         "RegressionMetrics", "AccuracyMetric", "R2Components"),
        "gicho.metrics",
    ),
    **dict.fromkeys(
        ("entropy", "cross_entropy", "kl_divergence", "kl_divergence_continuous",
         "kl_normal", "kl_mvn", "entropy_normal"),
        "gicho.information",
    ),
    "Moments": "gicho.moments",
    "LinearRegression": "gicho.linear",
    **dict.fromkeys(("PCA", "Whitening"), "gicho.decomposition"),
    "load": "gicho.runs",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports("gicho", globals(), _EXPORTS)
