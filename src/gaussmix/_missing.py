"""Exact EM with missing values (Ghahramani & Jordan 1994), grouped by missingness pattern.

A row with NaN in some coordinates ``m`` and values in the others ``o`` enters EM through
its observed marginal. With ``Sigma = Sigma_k`` and ``mu = mu_k``:

* E-step density: ``N(x_o | mu_o, Sigma_oo)``; the log-likelihood of the fit is the
  observed-data log-likelihood ``sum_n log sum_k pi_k N(x_n,o | mu_k,o, Sigma_k,oo)``.
* The expected sufficient statistics replace the missing coordinates by their conditional
  mean ``xhat_m = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)`` and add the conditional
  covariance ``C = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om`` to the scatter (in the
  ``(m, m)`` block), per component.

The statistics are the same additive :class:`~gaussmix.stats.SufficientStatistics` as for
complete rows (about the components' current means), reduced to the family's statistic
(full, pooled, diagonal or trace), so the M-step does not change and EM never lowers the
observed-data log-likelihood. All arithmetic here is float64 (results are cast by the
callers).

How the work is organised
-------------------------
*Patterns, padded.* The rows are sorted by missingness pattern. Every pattern's
factorisations are computed once per call, batched over all patterns and components with
D x D matrices padded at the missing coordinates: ``Sigma~`` is ``Sigma_k`` with the
missing rows and columns replaced by those of the identity, so its Cholesky factor is
``chol(Sigma_oo)`` with ones on the missing diagonal, ``log|Sigma~| = log|Sigma_oo|``, and
with ``Q`` = ``Sigma~^-1`` zeroed outside ``(o, o)`` (the padded ``Sigma_oo^-1``):

* ``(x - mu)^T Q (x - mu)`` is the observed Mahalanobis distance, for x zero-filled;
* ``B = Sigma Q`` is the *lift*: identity on the observed rows, the regression
  ``Sigma_mo Sigma_oo^-1`` on the missing rows, zero columns at the missing coordinates,
  so the completed, centred row is ``B (x - mu)``;
* ``C = (Sigma - B Sigma)`` on the ``(m, m)`` block is the conditional covariance.

*Quadratic features* (the fast path, :func:`incomplete_statistics`). As for complete rows
(:class:`gaussmix._estep.QuadraticEStep`), with ``u`` the row minus a centre ``c`` and
zero-filled, the observed log-density is linear in ``q(u) = (1, u, u_i u_j)``: one product
per pattern of the rows' features with that pattern's (F, K) coefficients gives the
log-densities, and one product of the responsibilities with the same features gives each
pattern's moments of the observed coordinates about ``c``. The statistics of a pattern
follow from its moments in closed form, ``s1 += B S1``, ``s2 += B S2 B^T + N C`` (moments
about the means), so the per-row work does not depend on the pattern. Rounding grows like
eps times the squared whitened distance from ``c``; a call whose moments would cancel
(:func:`_moments_accurate`) is redone by the exact path.

*Residuals* (the exact path, also :func:`impute`): per pattern, the residuals
``d = x - mu_k`` (zero-filled), whitened by the padded inverse factor and lifted by ``B``.

*Bounded memory.* The sorted rows are processed in blocks of ``block_size`` rows (a
pattern with many rows spans several blocks), and the padded factorisations in groups of
patterns whose stacks stay under :data:`_FACTOR_BUDGET` numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "condition_row",
    "impute",
    "incomplete_rows",
    "incomplete_statistics",
    "weighted_log_prob",
]

_LOG_2PI = np.log(2 * np.pi)
# Numbers in one group's stacks of padded (K, D, D) matrices (about 8 stacks of them).
_FACTOR_BUDGET = 1 << 20
# Cancellation factor accepted in the quadratic moments (E[u_i^2] / Sigma_ii), float64:
# the relative rounding of a variance is eps times this factor (as in gaussmix._estep).
_CANCELLATION = 1e8
_NEW_VARIANCE_NOISE = 1024.0


def incomplete_rows(X) -> np.ndarray | None:
    """Boolean mask of the rows holding a NaN, or None when X holds none (the fast path).

    The sums of the rows' absolute values (one matrix-vector product) are NaN exactly for
    the rows holding a NaN (nonnegative terms: infinities add up to infinity, never NaN).
    """
    X = np.asarray(X)
    if X.dtype.kind != "f":
        return None
    if X.ndim != 2 or X.shape[1] == 0:
        mask = np.isnan(X).reshape(len(X), -1).any(axis=1) if X.ndim else np.isnan(X)
        return mask if np.any(mask) else None
    mask = np.empty(X.shape[0], dtype=bool)
    ones = np.ones(X.shape[1], dtype=X.dtype)
    step = 1 << 16  # rows per product: the absolute values' copy stays small
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, X.shape[0], step):
            part = X[start:start + step]
            np.isnan(np.abs(part) @ ones, out=mask[start:start + step])
    return mask if mask.any() else None


def default_block_size(n_features: int, n_components: int) -> int:
    """Rows per block of the missing-value path: about 4 MiB of per-row workspace."""
    D, K = n_features, n_components
    per_row = 8 * (2 + D + D * (D + 1) // 2 + 3 * K + K * D)
    return int(np.clip((4 << 20) // per_row, 64, 16384))


# --------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------
def _pattern_codes(missing: np.ndarray) -> np.ndarray:
    """One integer per row, equal for equal rows of the (n, D) mask.

    Up to 64 features, the mask's bits packed into the smallest unsigned integer that holds
    them (a stable sort of 8 or 16-bit integers is a radix sort); beyond, the index of the
    row among the distinct rows.
    """
    n, D = missing.shape
    if D > 64:
        return np.unique(missing, axis=0, return_inverse=True)[1].reshape(-1)
    packed = np.packbits(missing, axis=1, bitorder="little")  # (n, ceil(D / 8)) uint8
    width = 1 if D <= 8 else 2 if D <= 16 else 4 if D <= 32 else 8
    if packed.shape[1] < width:
        packed = np.concatenate(
            [packed, np.zeros((n, width - packed.shape[1]), np.uint8)], axis=1
        )
    return np.ascontiguousarray(packed).view(f"<u{width}").reshape(n)


class _Sorted:
    """The rows of a (n, D) missingness mask sorted by pattern.

    Attributes
    ----------
    order : ndarray of shape (n,)
        Row indices, pattern by pattern (stable within a pattern).
    starts : ndarray of shape (P + 1,)
        Pattern p holds ``order[starts[p]:starts[p + 1]]``.
    patterns : ndarray of shape (P, D), bool
        True where the pattern is missing.
    """

    def __init__(self, missing: np.ndarray):
        n = missing.shape[0]
        codes = _pattern_codes(missing)
        self.order = np.argsort(codes, kind="stable")
        sorted_codes = codes[self.order]
        firsts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        self.starts = np.r_[firsts, n]
        self.patterns = missing[self.order[firsts]]
        empty = self.patterns.all(axis=1)
        if empty.any():
            count = int(np.diff(self.starts)[empty].sum())
            first = int(self.order[self.starts[np.flatnonzero(empty)[0]]])
            raise ValueError(
                f"{count} row(s) have no observed value (every feature is NaN), the first "
                f"one at row {first} of the rows with NaN: they carry no information. Drop "
                "the rows that are entirely missing."
            )

    @property
    def n_patterns(self) -> int:
        return len(self.patterns)

    def groups(self, n_components: int):
        """Consecutive pattern ranges ``(a, b)`` whose padded stacks fit the budget."""
        D = self.patterns.shape[1]
        size = max(1, _FACTOR_BUDGET // (n_components * D * D))
        for a in range(0, self.n_patterns, size):
            yield a, min(a + size, self.n_patterns)

    def blocks(self, a: int, b: int, block_size: int):
        """Row blocks of patterns a..b-1: ``(r0, r1, segments)`` with segments
        ``(p, s, e)`` (pattern p - a, its rows ``order[s:e]`` within ``r0..r1``)."""
        lo, hi = int(self.starts[a]), int(self.starts[b])
        for r0 in range(lo, hi, block_size):
            r1 = min(r0 + block_size, hi)
            first = int(np.searchsorted(self.starts, r0, side="right")) - 1
            last = int(np.searchsorted(self.starts, r1, side="left"))
            segments = [
                (p - a, max(int(self.starts[p]), r0), min(int(self.starts[p + 1]), r1))
                for p in range(first, last)
            ]
            yield r0, r1, segments


def _patterns(missing: np.ndarray):
    """``(pattern, rows)`` for every distinct missingness pattern (a boolean (D,) row)."""
    index = _Sorted(missing) if missing.size else None
    if index is None:
        return
    for p in range(index.n_patterns):
        yield index.patterns[p], index.order[index.starts[p]:index.starts[p + 1]]


class _Factors:
    """Padded factorisations of patterns (P, D) under every component (see module doc).

    Attributes (float64; P patterns, K components)
    ----------
    inv_chol : (P, K, D, D)   inverse of the padded Cholesky factor
    log_det : (P, K)          log |Sigma_k,oo|
    precision : (P, K, D, D)  padded Sigma_k,oo^-1 (zero outside (o, o))
    lift : (P, K, D, D)       B = Sigma_k Q: identity rows at o, the regression at m
    cond_cov : (P, K, D, D)   conditional covariance of the missing block (zero elsewhere)
    n_observed : (P,)
    """

    def __init__(self, covariances: np.ndarray, patterns: np.ndarray):
        P, D = patterns.shape
        observed = ~patterns
        both_observed = observed[:, :, None] & observed[:, None, :]  # (P, D, D)
        eye = np.eye(D)
        padded = np.where(both_observed[:, None], covariances[None], 0.0)
        padded += (patterns[:, :, None] * eye)[:, None]
        try:
            chol = np.linalg.cholesky(padded)
        except np.linalg.LinAlgError as exc:  # pragma: no cover - parameters are checked
            raise ValueError(
                "A covariance matrix is not positive definite, so the marginal of some "
                "observed coordinates cannot be evaluated; increase reg_covar."
            ) from exc
        self._chol = chol
        self.log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=2, axis2=3)), axis=2)
        precision = np.linalg.inv(padded)
        precision = 0.5 * (precision + np.swapaxes(precision, 2, 3))
        self.precision = precision * both_observed[:, None]
        lift = covariances[None] @ self.precision
        # Observed rows: Sigma_oo Sigma_oo^-1 is the identity; make it exact.
        identity_rows = np.broadcast_to(eye * observed[:, None, :], (P, D, D))
        self.lift = np.where(observed[:, None, :, None], identity_rows[:, None], lift)
        cond = (covariances[None] - self.lift @ covariances[None]) * (
            patterns[:, :, None] & patterns[:, None, :]
        )[:, None]
        self.cond_cov = 0.5 * (cond + np.swapaxes(cond, 2, 3))
        self.n_observed = observed.sum(axis=1)

    @property
    def inv_chol(self):
        """Inverse of the padded Cholesky factors (P, K, D, D) (for the exact path)."""
        if not hasattr(self, "_inv_chol"):
            self._inv_chol = np.linalg.inv(self._chol)
        return self._inv_chol

    def log_const(self, log_weights):
        """``log pi_k - (|o| log 2 pi + log |Sigma_k,oo|) / 2``, shape (P, K)."""
        return log_weights[None, :] - 0.5 * (
            self.n_observed[:, None] * _LOG_2PI + self.log_det
        )


def _full_parameters(params):
    """Means (K, D), full covariances (K, D, D) and log weights, float64."""
    family = params.family
    K, D = params.n_components, params.n_features
    covariances = np.asarray(family.full_covariances(params.covariances, K, D), np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(params.weights, dtype=np.float64))
    return means, covariances, log_weights


def _normalise(weighted):
    """Responsibilities (n, K) and log p(x) (n,) from weighted log-probabilities (n, K)."""
    top = weighted.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    resp = np.exp(weighted - top)
    total = resp.sum(axis=1, keepdims=True)
    resp /= total
    return resp, (top + np.log(total))[:, 0]


# --------------------------------------------------------------------------------------
# Quadratic features (fast path)
# --------------------------------------------------------------------------------------
class _Quadratic:
    """Per-pattern coefficients of the log-density on the features q(u) = (1, u, u_i u_j),
    and the row blocks' features in (F, n) layout (as gaussmix._estep.QuadraticEStep)."""

    def __init__(self, D, centre):
        from ._estep import _feature_pairs

        self.D = D
        self.centre = centre
        self.pairs = _feature_pairs(D)
        self.n_features = 1 + D + len(self.pairs[0])

    def workspace(self, block_size, n_components):
        """Buffers of one thread, reused block after block (a fresh array that size is a
        new mapping and page faults): the features, with D / 2 more rows when D is even
        (the products are built D rows at a time, the last D / 2 repeating pairs), u twice
        over, the log-densities and the responsibilities."""
        D = self.D
        buffer = np.empty((1 + D + (D // 2 + 1) * D, block_size))
        buffer[0] = 1.0
        return {
            "buffer": buffer, "twice": np.empty((2 * D, block_size)),
            "log_dens": np.empty((n_components, block_size)),
            "resp": np.empty((n_components, block_size)),
        }

    def features(self, X_rows, work):
        """q(u) (F, n) of rows (n, D) with NaN: u = x - c, zero at missing coordinates."""
        n, D = X_rows.shape
        out = work["buffer"][:self.n_features, :n]
        u = out[1:1 + D]
        np.copyto(u, X_rows.T)  # a transposing copy, then contiguous arithmetic
        u -= self.centre[:, None]
        np.copyto(u, 0.0, where=np.isnan(u))
        twice = work["twice"][:, :n]
        twice[:D] = u
        twice[D:] = u
        step = twice.strides[0]
        # The pairs come as D/2 + 1 rotations (see _estep._feature_pairs): u_i u_(i+o mod D)
        # for o = 0 .. D/2, the rotations being overlapping row ranges of u written twice.
        rotations = np.lib.stride_tricks.as_strided(
            twice, (D // 2 + 1, D, n), (step, step, twice.strides[1]), writeable=False
        )
        np.multiply(u, rotations, out=work["buffer"][1 + D:, :n].reshape(D // 2 + 1, D, n))
        return out

    def coefficients(self, factors, means, log_weights):
        """(P, K, F) coefficients of the weighted log-densities lowered by each pattern's
        largest constant (returned, (P,)): every value is then <= 0 up to rounding."""
        i, j = self.pairs
        shifted = means - self.centre  # (K, D)
        Q = factors.precision  # (P, K, D, D)
        linear = np.einsum("pkij,kj->pki", Q, shifted)
        log_const = factors.log_const(log_weights)
        finite = np.isfinite(log_const)
        lowered = np.max(np.where(finite, log_const, -np.inf), axis=1)
        lowered = np.where(np.isfinite(lowered), lowered, 0.0)
        const = log_const - lowered[:, None] - 0.5 * np.einsum("pki,ki->pk", linear, shifted)
        # A zero weight: exp() of the term gives exactly 0.
        const = np.where(finite, const, -np.finfo(np.float64).max / 4)
        quad = -Q[:, :, i, j] * np.where(i == j, 0.5, 1.0)
        coef = np.concatenate([const[:, :, None], linear, quad], axis=2)  # (P, K, F)
        return np.ascontiguousarray(coef), lowered

    def moments(self, sums, means):
        """Per-pattern ``(N (P, K), S1 (P, K, D), S2 (P, K, D, D), second (P, K, D))``:
        weights and moments of the observed coordinates about the means (S1, S2), and the
        raw second moments about the centre (diagonal) for the accuracy check.

        ``sums`` (P, F, K): sum over a pattern's rows of q(u_n) r_nk.
        """
        D = self.D
        i, j = self.pairs
        sums = np.swapaxes(sums, 1, 2)  # (P, K, F)
        nk = sums[:, :, 0]
        s1c = sums[:, :, 1:1 + D]
        s2c = np.zeros((*sums.shape[:2], D, D))
        s2c[:, :, i, j] = sums[:, :, 1 + D:]
        s2c[:, :, j, i] = sums[:, :, 1 + D:]
        shifted = means - self.centre  # m_k
        # About the means: S2 - S1 m^T - m S1^T + N m m^T, S1 - N m.
        s1 = s1c - nk[:, :, None] * shifted[None]
        cross = s1c[:, :, :, None] * shifted[None, :, None, :]
        s2 = (
            s2c - cross - np.swapaxes(cross, 2, 3)
            + nk[:, :, None, None] * (shifted[:, :, None] * shifted[:, None, :])[None]
        )
        return nk, s1, s2, np.diagonal(s2c, axis1=2, axis2=3)


def _normalise_lowered(log_dens, row_shift, resp):
    """Responsibilities (K, n) into ``resp`` from log-densities (K, n) each <= 0 up to
    rounding; returns log p(x) (n,) = log sum_k exp(.) + row_shift."""
    np.maximum(log_dens, -700.0, out=resp)  # exp() slow path below -708; no change
    np.exp(resp, out=resp)
    total = resp.sum(axis=0)
    low = total < 1e-200
    if low.any():
        # Rows far from every component: every term underflowed; per-row maximum.
        part = log_dens[:, low]
        top = part.max(axis=0)
        part = np.exp(part - top)
        part_total = part.sum(axis=0)
        resp[:, low] = part / part_total
        total[low] = 1.0
        log_norm = np.log(total)
        log_norm[low] = top + np.log(part_total)
    else:
        log_norm = np.log(total)
    resp *= 1.0 / total
    log_norm += row_shift
    return log_norm


def _run_parts(executor, blocks, run):
    """``run(part)`` on round-robin parts of ``blocks``, one per thread of ``executor``
    (as gaussmix.stats does for complete rows)."""
    n_workers = getattr(executor, "_max_workers", 1) if executor is not None else 1
    if n_workers < 2 or len(blocks) < 2 * n_workers:
        return [run(blocks)]
    return list(executor.map(run, [blocks[i::n_workers] for i in range(n_workers)]))


def _moments_accurate(nk, s2, second, observed, covariances) -> bool:
    """Whether the per-pattern moments about the means kept float64 accuracy.

    A variance about the means loses about eps * E[u_i^2] / Var[u_i] of its value; accept a
    factor up to :data:`_CANCELLATION` against the components' current variances, and each
    component's total scatter must exceed its rounding :data:`_NEW_VARIANCE_NOISE` times
    (a component collapsing far from the centre fails, as for complete rows).
    """
    used = nk > 0  # (P, K)
    if not used.any():
        return True
    variances = np.diagonal(covariances, axis1=1, axis2=2)[None]  # (1, K, D)
    mean_second = second / np.where(used, nk, 1.0)[:, :, None]
    factor = np.where(used[:, :, None] & observed[:, None, :], mean_second / variances, 0.0)
    if np.max(factor) > _CANCELLATION:
        return False
    scatter = np.einsum("pkii->k", s2)
    rounding = np.einsum("pki->k", np.where(observed[:, None, :], second, 0.0))
    eps = np.finfo(np.float64).eps
    totals = used.any(axis=0)
    return bool(np.all(scatter[totals] > _NEW_VARIANCE_NOISE * eps * rounding[totals]))


# --------------------------------------------------------------------------------------
# Residuals (exact path)
# --------------------------------------------------------------------------------------
def _residuals(rows_z, observed, factors, p, means, lift=True):
    """Zero-filled residuals (K, n, D): whitened, and completed (None without ``lift``)."""
    d = (rows_z[None, :, :] - means[:, None, :]) * observed
    z = d @ np.swapaxes(factors.inv_chol[p], 1, 2)
    completed = d @ np.swapaxes(factors.lift[p], 1, 2) if lift else None
    return z, completed


def _prepare(X, params):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array, got {X.ndim} dimension(s).")
    means, covariances, log_weights = _full_parameters(params)
    return X, means, covariances, log_weights, _Sorted(np.isnan(X))


def _exact_pass(X, params, block_size, visit, lift=True):
    """Call ``visit(rows, p, factors, completed, weighted)`` for every pattern segment of
    every row block: the rows (indices into X), the pattern's index in ``factors``, the
    completed residuals (K, n, D; None without ``lift``) and the weighted log-densities
    (n, K)."""
    X, means, covariances, log_weights, index = _prepare(X, params)
    if block_size is None:
        block_size = default_block_size(X.shape[1], params.n_components)
    for a, b in index.groups(params.n_components):
        factors = _Factors(covariances, index.patterns[a:b])
        log_const = factors.log_const(log_weights)
        for _, _, segments in index.blocks(a, b, block_size):
            for p, s, e in segments:
                rows = index.order[s:e]
                observed = ~index.patterns[a + p]
                rows_z = np.where(observed, np.take(X, rows, axis=0).astype(np.float64), 0.0)
                z, completed = _residuals(rows_z, observed, factors, p, means, lift)
                weighted = (log_const[p][:, None] - 0.5 * np.einsum("knd,knd->kn", z, z)).T
                visit(rows, p, factors, completed, weighted)


def weighted_log_prob(X, params, block_size=None) -> np.ndarray:
    """``log pi_k + log N(x_o | mu_k,o, Sigma_k,oo)`` of rows with NaN, shape (n, K)."""
    out = np.empty((np.asarray(X).shape[0], params.n_components))

    def visit(rows, p, factors, completed, weighted):
        out[rows] = weighted

    _exact_pass(X, params, block_size, visit, lift=False)
    return out


def _exact_statistics(X, params, w, block_size):
    K, D = params.n_components, params.n_features
    nk, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    total = [0.0]

    def visit(rows, p, factors, completed, weighted):
        nonlocal nk, s1, s2
        resp, log_p = _normalise(weighted)
        wr = (resp * w[rows][:, None]).T  # (K, n)
        weight_k = wr.sum(axis=1)
        nk += weight_k
        s1 += np.einsum("kn,knd->kd", wr, completed)
        s2 += np.swapaxes(completed * wr[:, :, None], 1, 2) @ completed
        s2 += weight_k[:, None, None] * factors.cond_cov[p]
        total[0] += float(np.dot(w[rows], log_p))

    _exact_pass(X, params, block_size, visit)
    return nk, s1, s2, total[0]


def incomplete_statistics(
    X, params, sample_weight=None, block_size=None, rows=None, executor=None
):
    """Moments of rows with NaN about the components' means: ``(shift, nk, s1, s2, ll, w)``.

    ``s2`` has the family's statistic form (full (K, D, D), pooled (D, D), diagonal (K, D)
    or trace (K,)); everything float64. Quadratic features per pattern; the residual
    path when the moments would cancel (see the module docstring). ``rows``: the rows of
    X to use (all by default; saves the caller a copy), ``sample_weight`` theirs.
    ``executor``: a thread pool to spread the row blocks over (each thread sums its own).
    """
    X = np.asarray(X)
    means, covariances, log_weights = _full_parameters(params)
    index = _Sorted(np.isnan(X if rows is None else X[rows]))
    local_order = index.order  # positions among the rows used (sample_weight's order)
    if rows is not None:
        index.order = rows[local_order]
    n = len(local_order)
    D = X.shape[1]
    K = params.n_components
    weighted_rows = sample_weight is not None
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if block_size is None:
        block_size = default_block_size(D, K)
    block_size = max(1, min(int(block_size), n))
    weights = np.asarray(params.weights, dtype=np.float64)
    centre = weights @ means / weights.sum()
    quadratic = _Quadratic(D, centre)
    nk, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    log_likelihood = 0.0
    # A component whose mean is far from the centre in its own standard deviations (a far
    # row isolated in its component, at reg_covar) makes the quadratic features' terms
    # cancel before exp() (rounding ~ eps * that squared distance; exp overflowed for a
    # component 1e9 away with variance 1e-6): the exact path from the start.
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.max((means - centre) ** 2 / variances)
    accurate = bool(reach <= _CANCELLATION)
    order_weights = w[local_order] if weighted_rows else None
    for a, b in index.groups(K) if accurate else ():
        factors = _Factors(covariances, index.patterns[a:b])
        coef, lowered = quadratic.coefficients(factors, means, log_weights)

        def run(blocks, coef=coef, lowered=lowered, n_patterns=b - a):
            """Summed features times responsibilities per pattern, and log-likelihood."""
            work = quadratic.workspace(block_size, K)
            sums = np.zeros((n_patterns, quadratic.n_features, K))
            total = 0.0
            for r0, r1, segments in blocks:
                nb = r1 - r0
                features = quadratic.features(np.take(X, index.order[r0:r1], axis=0), work)
                dens = work["log_dens"][:, :nb]
                lengths = []
                for p, s, e in segments:
                    np.matmul(coef[p], features[:, s - r0:e - r0], out=dens[:, s - r0:e - r0])
                    lengths.append(e - s)
                row_shift = np.repeat(lowered[[p for p, _, _ in segments]], lengths)
                resp = work["resp"][:, :nb]
                log_p = _normalise_lowered(dens, row_shift, resp)
                if weighted_rows:
                    wb = order_weights[r0:r1]
                    resp *= wb
                    total += float(np.dot(wb, log_p))
                else:
                    total += float(log_p.sum())
                for p, s, e in segments:
                    sums[p] += features[:, s - r0:e - r0] @ resp[:, s - r0:e - r0].T
            return sums, total

        parts = _run_parts(executor, list(index.blocks(a, b, block_size)), run)
        sums = sum(part[0] for part in parts)
        log_likelihood += sum(part[1] for part in parts)
        pat_nk, pat_s1, pat_s2, second = quadratic.moments(sums, means)
        accurate = accurate and _moments_accurate(
            pat_nk, pat_s2, second, ~index.patterns[a:b], covariances
        )
        lift = factors.lift
        nk += pat_nk.sum(axis=0)
        s1 += np.einsum("pkde,pke->kd", lift, pat_s1)
        s2 += (lift @ pat_s2 @ np.swapaxes(lift, 2, 3)).sum(axis=0)
        s2 += np.einsum("pk,pkde->kde", pat_nk, factors.cond_cov)
    if not accurate:
        X_rows = X if rows is None else X[rows]
        nk, s1, s2, log_likelihood = _exact_statistics(X_rows, params, w, block_size)
    s2 = 0.5 * (s2 + np.swapaxes(s2, 1, 2))
    return (
        means.copy(), nk, s1, _reduce(params.family.statistic, s2), log_likelihood,
        float(w.sum()),
    )


def _reduce(statistic: str, s2: np.ndarray) -> np.ndarray:
    """The full (K, D, D) scatter in the family's statistic form."""
    if statistic == "full":
        return s2
    if statistic == "pooled":
        return s2.sum(axis=0)
    diagonal = np.diagonal(s2, axis1=1, axis2=2).copy()
    if statistic == "diagonal":
        return diagonal
    if statistic == "trace":
        return diagonal.sum(axis=1)
    raise ValueError(f"Unknown statistic {statistic!r}.")


def impute(X, params, block_size=None) -> np.ndarray:
    """X with every NaN replaced by ``E[x_m | x_o] = sum_k gamma_k(x_o) xhat_k,m``.

    Observed values are returned unchanged; float64 result.
    """
    X = np.array(X, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)

    def visit(rows, p, factors, completed, weighted):
        resp, _ = _normalise(weighted)
        missing = np.flatnonzero(np.isnan(X[rows[0]]))
        xhat = means[:, None, missing] + completed[:, :, missing]  # (K, n, |m|)
        X[np.ix_(rows, missing)] = np.einsum("nk,knm->nm", resp, xhat)

    _exact_pass(X, params, block_size, visit)
    return X


def condition_row(x, params):
    """The conditional mixture of one row's missing coordinates given its observed ones.

    Returns
    -------
    missing : ndarray of int
        The missing feature indices (the conditional mixture's features, in order).
    weights : ndarray of shape (K,)
        Posterior probabilities of the components given the observed values.
    means : ndarray of shape (K, |m|)
    covariances : ndarray of shape (K, |m|, |m|)
    """
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    means = np.asarray(params.means, dtype=np.float64)
    missing = np.flatnonzero(np.isnan(x[0]))
    out = {}

    def visit(rows, p, factors, completed, weighted):
        resp, _ = _normalise(weighted)
        out["weights"] = resp[0]
        out["means"] = means[:, missing] + completed[:, 0, missing]
        out["cov"] = factors.cond_cov[p][:, missing][:, :, missing]

    _exact_pass(x, params, None, visit)
    return missing, out["weights"], out["means"], out["cov"]
