"""Where the data lives: rows in memory (or memory-mapped), handed out in blocks.

A data source gives the EM driver two things: the summed statistics of the current
parameters over all its rows, and the statistics of an initial assignment. The in-memory
source below loops over row blocks; the Dask source (``gaussmix._dask``) maps the same
:func:`~gaussmix.stats.block_statistics` over chunks on a cluster.
"""

from __future__ import annotations

import numpy as np

from ._init import kmeans, kmeans_plusplus, nearest_center
from .stats import (
    MixtureParameters,
    SufficientStatistics,
    _blocks,
    auto_block_size,
    block_statistics,
    statistics_from_responsibilities,
    statistics_of_rows,
)


class ArrayData:
    """An in-memory (or memory-mapped) array of rows, with optional sample weights."""

    def __init__(self, X: np.ndarray, sample_weight=None, block_size=None, executor=None):
        self.X = X
        self.executor = executor
        self.n_samples, self.n_features = X.shape
        if sample_weight is not None:
            # Rescale to mean 1: the fit does not depend on the scale of the weights, but
            # the 10 * eps guard on N_k would for tiny ones.
            total = float(np.sum(sample_weight, dtype=np.float64))
            sample_weight = (sample_weight * (self.n_samples / total)).astype(X.dtype)
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.block_size = block_size
        self.weight_sum = (
            float(self.n_samples) if sample_weight is None else float(np.sum(sample_weight))
        )
        # A common point for the moments of initial assignments: the mean of a few rows.
        self.reference = X[: min(self.n_samples, 1000)].mean(axis=0, dtype=np.float64)

    def _block_size(self, n_components):
        if self.block_size is not None:
            return self.block_size
        return auto_block_size(self.n_features, n_components, self.dtype.itemsize)

    def statistics(self, params: MixtureParameters) -> SufficientStatistics:
        """E-step over every row: summed statistics of ``params``."""
        return block_statistics(
            self.X,
            params,
            self.sample_weight,
            block_size=self.block_size,  # None: sized for the covariance family
            executor=self.executor,
        )

    def _statistics_by_block(self, resp_of_block, n_components, covariance_type):
        total = None
        for rows in _blocks(self.n_samples, self._block_size(n_components)):
            Xb = self.X[rows]
            resp = resp_of_block(Xb)
            wb = None if self.sample_weight is None else self.sample_weight[rows]
            stats = statistics_from_responsibilities(
                Xb, resp, covariance_type, shift=self.reference, sample_weight=wb
            )
            total = stats if total is None else total + stats
        return total

    def _statistics_of_rows(self, indices, covariance_type):
        return statistics_of_rows(
            self.X[indices],
            covariance_type,
            shift=self.reference,
            weight_sum=self.weight_sum,
            sample_weight=None if self.sample_weight is None else self.sample_weight[indices],
        )

    def initial_statistics(self, method, n_components, random_state, covariance_type):
        """Statistics of the initial responsibilities chosen by ``method``.

        * ``"kmeans"``: one-hot on the nearest centre of Lloyd's k-means;
        * ``"k-means++"``: one-hot on the k-means++ seeds (one row per component);
        * ``"random"``: uniform random responsibilities, normalised per row;
        * ``"random_from_data"``: one-hot on rows drawn at random without replacement.
        """
        X, weights = self.X, self.sample_weight
        if method == "kmeans":
            centers = kmeans(
                X, n_components, random_state, weights, block_size=self._block_size(1)
            )
            centers_sq = np.einsum("kd,kd->k", centers, centers)
            eye = np.eye(n_components)
            return self._statistics_by_block(
                lambda Xb: eye[nearest_center(Xb.astype(np.float64), centers, centers_sq)],
                n_components,
                covariance_type,
            )
        if method == "random":

            def random_resp(Xb):
                resp = random_state.uniform(size=(Xb.shape[0], n_components))
                return resp / resp.sum(axis=1, keepdims=True)

            return self._statistics_by_block(random_resp, n_components, covariance_type)
        if method == "k-means++":
            _, indices = kmeans_plusplus(X, n_components, random_state, weights)
            return self._statistics_of_rows(indices, covariance_type)
        # random_from_data
        if weights is None:
            indices = random_state.choice(self.n_samples, size=n_components, replace=False)
        else:
            positive = np.flatnonzero(weights > 0)
            if len(positive) < n_components:
                raise ValueError(
                    f"init_params='random_from_data' needs at least n_components="
                    f"{n_components} rows with positive sample_weight; got {len(positive)}."
                )
            p = weights[positive] / weights[positive].sum()
            indices = positive[
                random_state.choice(len(positive), size=n_components, replace=False, p=p)
            ]
        return self._statistics_of_rows(indices, covariance_type)
