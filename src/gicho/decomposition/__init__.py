"""Principal component analysis and whitening, exact, streaming and distributed.

:class:`PCA` centres the data and rotates it onto the directions of greatest variance;
:class:`Whitening` (PCA, ZCA or Cholesky) goes further and makes the covariance the
identity. Both are scikit-learn transformers (usable in pipelines, ``get_params`` /
``set_params``, fitted attributes ending in ``_``) and accept

* NumPy arrays (float32 stays float32; integers become float64);
* torch tensors, decomposed on their own device with ``torch.linalg``; fitted attributes and
  outputs are tensors;
* Dask arrays and DataFrames (``PCA`` only): the sufficient statistics of the row blocks are
  reduced on the cluster (:func:`gicho.dask.dask_moments`) and the covariance solver
  runs on the driver; ``transform`` stays lazy.

Conventions: variances use ``ddof = 1`` (as scikit-learn's ``explained_variance_``); component
signs follow scikit-learn's rule (the largest-magnitude loading of each component is
positive), so components equal scikit-learn's without sign flips.
"""

from __future__ import annotations

from gicho.decomposition._pca import PCA
from gicho.decomposition._whitening import Whitening

__all__ = ["PCA", "Whitening"]
