"""The information criteria (BIC, AIC, ICL), written once for the estimator and selection.

scikit-learn's sign (lower is better):

* ``bic = -2 log L + p log n``  (mclust reports ``2 log L - p log n``: its BIC is minus ours)
* ``aic = -2 log L + 2 p``
* ``icl = bic - 2 sum_n w_n log max_k r_nk`` (Biernacki, Celeux & Govaert 2000: the BIC of
  the classification likelihood at the MAP assignment; mclust's ICL is minus ours)

with ``L`` the likelihood, ``p`` the number of free parameters, ``n`` the number of samples
(the sum of the sample weights when given) and ``r_nk`` the responsibilities.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["information_criteria", "map_entropy"]


def map_entropy(resp, sample_weight=None) -> float:
    """``-sum_n w_n log max_k r_nk``: the entropy of the hard (MAP) assignment.

    ``resp`` may be a NumPy array or a dask array (then the maxima are computed).
    """
    top = resp.max(axis=1)
    if hasattr(top, "compute"):
        top = top.compute()
    top = np.asarray(top, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_map = np.log(top)
    return float(-(log_map.sum() if sample_weight is None else log_map @ sample_weight))


def information_criteria(log_likelihood, n_parameters, n_samples, *, resp=None,
                         sample_weight=None) -> dict:
    """``{"bic", "aic", "icl"}`` of a fit (ICL only with ``resp``, else None).

    Parameters
    ----------
    log_likelihood : float
        Total (weighted) log-likelihood.
    n_parameters : int
        Number of free parameters.
    n_samples : float
        Number of samples (sum of the weights when weighted).
    resp : array-like of shape (n_samples, n_components), optional
        Responsibilities, for the ICL.
    sample_weight : array-like of shape (n_samples,), optional
    """
    bic = -2.0 * float(log_likelihood) + n_parameters * math.log(n_samples)
    return {
        "bic": bic,
        "aic": -2.0 * float(log_likelihood) + 2.0 * n_parameters,
        "icl": None if resp is None else bic + 2.0 * map_entropy(resp, sample_weight),
    }
