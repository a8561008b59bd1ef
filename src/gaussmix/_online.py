"""Online (stepwise) EM: running averages of the sufficient statistics.

Cappé & Moulines (2009), "On-line expectation-maximization algorithm for latent data
models" (JRSS B 71(3)); Liang & Klein (2009), "Online EM for unsupervised models". After
the E-step of batch ``t`` under the current parameters, the running statistics become

    S <- (1 - rho_t) S + rho_t S_t / W_t,      rho_t = (t + t0) ** (-alpha)

where ``S_t`` are the batch's additive statistics (:class:`~gaussmix.stats.SufficientStatistics`)
and ``W_t`` its total weight (its number of rows unweighted), so ``S`` is an average per
sample; ``t0`` is ``learning_offset`` and ``alpha`` is ``learning_decay`` (scikit-learn's
names for the same schedule in LatentDirichletAllocation), alpha in (0.5, 1] so that
sum rho = inf and sum rho^2 < inf. The M-step then runs on ``S`` after every batch.

Statistics, never parameters, are blended. Statistics computed under different
parameters are not added as one iteration's blocks are (``SufficientStatistics.__add__``
refuses it): they are brought to a common shift (``moved_to``, exact algebra) and their
convex combination is taken; the result belongs to no single set of parameters
(``parameters_id`` None). The common shift is the batch's (about the current means or the
mixture mean), so the moments stay small and the M-step's ``s2 - N d d^T`` does not cancel.

The first batch has nothing to blend with (rho = 1). ``partial_fit`` after ``fit``, or on a
model file without running statistics, starts from :func:`statistics_of_parameters`: the
statistics whose M-step gives back the fitted parameters, counted as step 0.
"""

from __future__ import annotations

import numpy as np

from .stats import MixtureParameters, SufficientStatistics

__all__ = ["blend", "check_schedule", "statistics_of_parameters", "step_size",
           "typical_weight"]

# Defaults of GaussianMixture(learning_offset=..., learning_decay=...), chosen by
# `python benchmarks/bench_online.py --sweep --spreads 1.5,2 --seeds 2` (400,000 rows in
# batches of 5,000, D = 5, K = 4, full, four data sets on which batch EM needs 16 to 30
# iterations): largest gap to converged batch EM per sample after one pass / three passes
# 0.00014 / 0.00004 at (2, 0.7); (0, 0.7) 0.00012 / 0.00003; (10, 0.7) 0.00021 / 0.00005;
# (10, 0.6) 0.00016 / 0.00005; (2, 1.0) 0.00058 / 0.00036; (50, 1.0) 0.00264 / 0.00136.
# Without EM on the first batch (a k-means start only) every setting was 10-100 times
# worse (0.0057 / 0.00026 at best, at (0, 0.55)): the first batch's EM is what makes one
# pass enough.
LEARNING_OFFSET = 2.0
LEARNING_DECAY = 0.7


def check_schedule(learning_offset, learning_decay) -> None:
    """ValueError unless ``learning_offset >= 0`` and ``0.5 < learning_decay <= 1``."""
    for name, value in (("learning_offset", learning_offset), ("learning_decay", learning_decay)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {value!r}.")
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}.")
    if learning_offset < 0:
        raise ValueError(
            f"learning_offset must be >= 0, got {learning_offset!r}; it delays the decay of "
            "the step size rho_t = (t + learning_offset) ** -learning_decay (default 2)."
        )
    if not 0.5 < learning_decay <= 1.0:
        raise ValueError(
            f"learning_decay must be in (0.5, 1], got {learning_decay!r}: stepwise EM "
            "converges only when the steps sum to infinity and their squares do not."
        )


def step_size(n_step: int, learning_offset: float, learning_decay: float,
              batch_weight: float | None = None, typical: float | None = None) -> float:
    """rho for the ``n_step``-th batch (1-based): ``(n_step + t0) ** -alpha``, at most 1,
    scaled down for a batch lighter than the ``typical`` one (the mean weight of the
    batches so far): times ``min(1, batch_weight / typical)``.

    Equal batches take the schedule as it is. A small batch after large ones (the short
    tail of a file, one row given to ``--resume``) moves the model in proportion to its
    weight: without the scaling one row after 10,000 took a step of 0.46 and dragged a
    component's mean 17 sd towards itself.
    """
    rho = float(min(1.0, (n_step + learning_offset) ** (-learning_decay)))
    if batch_weight is not None and typical is not None and typical > 0:
        rho *= min(1.0, batch_weight / typical)
    return rho


def typical_weight(previous: float | None, n_before: int, batch_weight: float) -> float:
    """The mean batch weight after one more batch (``previous`` over ``n_before`` batches)."""
    if previous is None or n_before <= 0:
        return float(batch_weight)
    return float((previous * n_before + batch_weight) / (n_before + 1))


def normalised(stats: SufficientStatistics) -> SufficientStatistics:
    """The statistics divided by their total weight (averages per sample)."""
    w = stats.weight_sum
    return SufficientStatistics(
        stats.covariance_type, stats.shift, stats.nk / w, stats.s1 / w, stats.s2 / w,
        stats.log_likelihood / w, 1.0, None,
    )


def blend(
    running: SufficientStatistics | None, batch: SufficientStatistics, rho: float
) -> SufficientStatistics:
    """``(1 - rho) running + rho batch / W_batch``, about the batch's shift.

    ``running`` (per sample, or None before the first batch) is moved to the batch's shift
    first; with ``running`` None or ``rho == 1`` the result is the normalised batch.
    """
    new = normalised(batch)
    if running is None or rho >= 1.0:
        return new
    old = running if np.array_equal(running.shift, new.shift) else running.moved_to(new.shift)
    keep = 1.0 - rho
    return SufficientStatistics(
        new.covariance_type,
        new.shift,
        keep * old.nk + rho * new.nk,
        keep * old.s1 + rho * new.s1,
        keep * old.s2 + rho * new.s2,
        keep * old.log_likelihood + rho * new.log_likelihood,
        1.0,
        None,
    )


def statistics_of_parameters(params: MixtureParameters, reg_covar: float,
                             log_likelihood: float = 0.0) -> SufficientStatistics:
    """Per-sample statistics whose M-step returns ``params`` (a fixed point of EM).

    About the means (``s1 = 0``), ``nk = weights`` and the scatter is the covariance minus
    ``reg_covar`` (the M-step adds it back), times the weight, reduced as the family's
    ``statistic`` says: per component (full), pooled (tied), diagonal, or trace
    (spherical: ``D`` times the variance). ``log_likelihood``: the fit's mean
    log-likelihood per sample (``lower_bound_``), which the running value starts from.
    """
    family = params.family
    weights = np.asarray(params.weights, dtype=np.float64)
    weights = weights / weights.sum()
    means = np.asarray(params.means, dtype=np.float64)
    cov = np.asarray(params.covariances, dtype=np.float64)
    n_features = means.shape[1]
    if family.statistic == "full":
        scatter = cov - reg_covar * np.eye(n_features)
        s2 = weights[:, None, None] * scatter
    elif family.statistic == "pooled":
        s2 = cov - reg_covar * np.eye(n_features)
    elif family.statistic == "diagonal":
        s2 = weights[:, None] * (cov - reg_covar)
    else:  # trace
        s2 = weights * n_features * (cov - reg_covar)
    return SufficientStatistics(
        family.name, means.copy(), weights, np.zeros_like(means), s2, float(log_likelihood),
        1.0, None,
    )


def dask_row_chunks(X, sample_weight=None):
    """``(X_chunk, w_chunk)`` NumPy pairs of a Dask array, one row chunk after another.

    Used by ``partial_fit`` on a Dask array: stepwise EM is sequential (each batch's E-step
    needs the previous M-step), so the chunks are computed one at a time on the client.
    """
    X = X.rechunk({1: -1})
    weight_blocks = None
    if sample_weight is not None and type(sample_weight).__module__.startswith("dask."):
        weight_blocks = sample_weight.rechunk((X.chunks[0],))
    elif sample_weight is not None:  # a scalar or an array in memory: one weight per row
        from ._validation import check_sample_weight

        sample_weight = check_sample_weight(sample_weight, X.shape[0])
    start = 0
    for i, rows in enumerate(X.chunks[0]):
        block = np.asarray(X.blocks[i, 0].compute())
        if weight_blocks is not None:
            w = np.asarray(weight_blocks.blocks[i].compute())
        elif sample_weight is not None:
            w = np.asarray(sample_weight)[start : start + rows]
        else:
            w = None
        start += rows
        yield block, w
