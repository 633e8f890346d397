"""Sentence embeddings against people: the Lee document-similarity ratings (Lee et al., 2005).

:func:`lee_correlations` compares the cosine similarities of embeddings of the 50
:func:`~gicho.data.text.offline_corpora.lee_documents` with the mean human rating of each pair
(:func:`~gicho.data.text.offline_corpora.lee_similarities`), over the 1,225 pairs of the upper
triangle, as the literature reports it: Pearson's r and Spearman's rho.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lee_correlations"]


def lee_correlations(embeddings: np.ndarray, ratings: np.ndarray | None = None) -> dict[str, float]:
    """Pearson and Spearman correlation of cosine similarities with human ratings.

    Parameters
    ----------
    embeddings : array of shape (50, D)
        One embedding per Lee document, in file order (need not be normalised).
    ratings : array of shape (50, 50), optional
        Default: :func:`~gicho.data.text.offline_corpora.lee_similarities`.

    Returns
    -------
    dict
        ``pearson``, ``spearman`` and ``n_pairs`` (1,225).
    """
    from scipy import stats

    if ratings is None:
        from gicho.data.text.offline_corpora import lee_similarities

        ratings = lee_similarities()
    embeddings = np.asarray(embeddings, dtype=np.float64)
    n = ratings.shape[0]
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ValueError(f"argument `embeddings` must have shape ({n}, D), one row per Lee document; "
                         f"got shape {embeddings.shape}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    if not np.all(np.isfinite(embeddings)) or np.any(norms == 0):
        raise ValueError("argument `embeddings` must be finite and non-zero in every row")
    unit = embeddings / norms
    rows, cols = np.triu_indices(n, k=1)
    cosine = np.einsum("id,id->i", unit[rows], unit[cols])
    human = ratings[rows, cols]
    return {"pearson": float(stats.pearsonr(cosine, human)[0]),
            "spearman": float(stats.spearmanr(cosine, human)[0]), "n_pairs": int(rows.size)}
