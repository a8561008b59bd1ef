"""The interface every covariance family implements, and the pieces families share.

A family is one immutable object (one instance per family, registered in
:mod:`gaussmix.families`). It describes how the family stores its covariances, how many free
parameters it has, its linear algebra, its sufficient statistics and M-step, and the words
used for it. Everything else in gaussmix asks the family instead of branching on its name.

Shapes (K = n_components, D = n_features)::

    attribute / method               full         tied          diag        spherical
    covariance_shape(K, D)           (K, D, D)    (D, D)        (K, D)      (K,)
      (covariances, precisions and precisions_cholesky all have this shape)
    precision_form                   full         shared_full   diagonal    scalar
    statistic (what s2 holds)        full         pooled        diagonal    trace
    scatter(Xc, resp) -> s2          (K, D, D)    (D, D)        (K, D)      (K,)
    m_step_covariances(...)          covariance_shape(K, D)
    log_det_cholesky(L, D)           (K,)         ()            (K,)        (K,)
    component_covariance(cov, k, D)  (D, D) for every family
    full_covariances(cov, K, D)      (K, D, D) for every family
    from_full(full, weights)         (K, D, D) in, covariance_shape(K, D) out
    n_covariance_parameters(K, D)    K D(D+1)/2   D(D+1)/2      K D         K
    min_points(D)                    D + 1        1             2           2

``precision_form``: how ``precisions_cholesky`` is stored. "full" and "shared_full" are
upper-triangular ``L`` with ``precision = L @ L.T`` (one per component, or one shared);
"diagonal" and "scalar" are ``1 / sqrt(variance)`` per feature or per component.
``statistic``: the second moment the E-step accumulates: the full scatter per component,
the full scatter summed over components ("pooled"), its diagonal, or its trace.

All linear algebra here runs in float64; callers cast to the data's dtype afterwards.
"""

from __future__ import annotations

import numpy as np

from .._estep import _INVERSE_SPLIT, _inverse_factor

__all__ = ["CovarianceFamily", "MatrixFamily", "VarianceFamily", "collapse_error",
           "direction_words"]


def collapse_error(component: str, reg_covar: float, detail: str) -> ValueError:
    """The error for a covariance that is not positive definite even after ``reg_covar``."""
    return ValueError(
        f"The covariance of {component} is not positive definite even after adding "
        f"reg_covar={reg_covar:g} to its diagonal ({detail}): the component has collapsed, "
        "for example onto a few identical points. Lower n_components, raise reg_covar "
        "(e.g. to 1e-4), or scale the data (standardize features on very different scales)."
    )


def direction_words(v: np.ndarray) -> str:
    """``"feature j"`` for a unit vector along an axis, else the vector and its main
    feature; beyond 6 features only the 3 largest loadings (a 300-feature vector made a
    warning of 20 KB)."""
    j = int(np.argmax(np.abs(v)))
    if abs(v[j]) > 1 - 1e-6:
        return f"feature {j}"
    if v.shape[0] <= 6:
        return f"direction {np.array2string(v, precision=3)} (mostly feature {j})"
    top = np.argsort(-np.abs(v), kind="stable")[:3]
    loadings = ", ".join(f"{int(i)} ({v[i]:+.3f})" for i in top)
    return f"a direction of {v.shape[0]} features, mostly features {loadings}"


class CovarianceFamily:
    """One covariance family (abstract). Subclasses set the class attributes below.

    Attributes
    ----------
    name : str
        scikit-learn's name ("full"); results always show this name.
    mclust_name : str
        mclust's three-letter model name ("VVV").
    aliases : tuple of str
        Other names accepted for the family (mclust's name is always one).
    description : str
        One sentence for summaries ("each component has its own full covariance matrix").
    volume, shape, orientation : str
        mclust's vocabulary for Sigma_k = lambda_k D_k A_k D_k^T: "equal", "variable",
        or (shape, orientation) "identity" / "axis-aligned".
    precision_form : {"full", "shared_full", "diagonal", "scalar"}
        How ``precisions_cholesky`` is stored (module docstring).
    statistic : {"full", "pooled", "diagonal", "trace"}
        What ``SufficientStatistics.s2`` holds (module docstring).
    shared : bool
        One covariance for all components (the model files and degeneracy reports name
        it once instead of per component).
    hides_flat_directions : bool
        The covariance cannot show a direction in which a component's points have no
        spread (spherical): the degeneracy check then looks at the points themselves.
    covariance_is_scatter : bool
        The M-step's covariance is the scatter reduced to the family's form plus
        ``reg_covar`` (scikit-learn's four), so a collapsing component shows in the
        parameters; mclust's constrained models add ``reg_covar`` to the scatters before
        their update, and a collapse shows only in the components' own scatters.
    plot_style : tuple of (color, marker, linestyle)
        The family's curve in model-selection plots.
    """

    name: str = ""
    mclust_name: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    volume: str = ""
    shape: str = ""
    orientation: str = ""
    precision_form: str = ""
    statistic: str = ""
    shared: bool = False
    hides_flat_directions: bool = False
    covariance_is_scatter: bool = False
    #: The M-step has no closed form (VEI, VEE, VEV, EVE, VVE): an iterative update, from
    #: the current covariances when there are any.
    iterative: bool = False
    plot_style: tuple[str, str, str] = ("0.3", "o", "-")

    def __repr__(self) -> str:
        return f"<covariance family {self.name!r} (mclust {self.mclust_name})>"

    @property
    def words(self) -> str:
        """Volume, shape and orientation in mclust's words, e.g. "variable volume, ..."."""
        return f"{self.volume} volume, {self.shape} shape, {self.orientation} orientation"

    @property
    def correlated(self) -> bool:
        """True when the covariances can hold correlations between features."""
        return self.precision_form in ("full", "shared_full")

    # -- storage and counts ------------------------------------------------------------
    def covariance_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances_``, ``precisions_`` and ``precisions_cholesky_``."""
        raise NotImplementedError

    def n_covariance_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the covariances (mclust's ``nVarParams``)."""
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the mixture: K - 1 weights, K D means and the covariances."""
        return (
            n_components - 1
            + n_components * n_features
            + self.n_covariance_parameters(n_components, n_features)
        )

    def min_points(self, n_features: int) -> int:
        """Smallest effective number of points for which a component's estimate is regular."""
        raise NotImplementedError

    # -- linear algebra (float64 in, float64 out) --------------------------------------
    def precision_cholesky(self, covariances, reg_covar: float = 0.0) -> np.ndarray:
        """Cholesky factors of the precisions; ValueError naming a collapsed component."""
        raise NotImplementedError

    def precision_cholesky_from_precisions(self, precisions) -> np.ndarray:
        raise NotImplementedError

    def precisions_from_cholesky(self, prec_chol) -> np.ndarray:
        raise NotImplementedError

    def covariances_from_precisions(self, prec_chol) -> np.ndarray:
        """Covariances from the precision Cholesky factors."""
        raise NotImplementedError

    def precisions(self, covariances) -> np.ndarray:
        """Precisions (inverse covariances, symmetric) in the family's shape."""
        raise NotImplementedError

    def log_det_cholesky(self, prec_chol, n_features: int):
        """``log det L`` per component, which is ``0.5 * log det(precision)``."""
        raise NotImplementedError

    def component_covariance(self, covariances, k: int, n_features: int) -> np.ndarray:
        """The (D, D) covariance matrix of component ``k``."""
        raise NotImplementedError

    def full_covariances(self, covariances, n_components: int, n_features: int) -> np.ndarray:
        """The covariances as a (K, D, D) stack (a shared one repeated)."""
        cov = np.asarray(covariances, dtype=np.float64)
        return np.stack(
            [self.component_covariance(cov, k, n_features) for k in range(n_components)]
        )

    def stored_matrices(self, covariances, n_components: int, n_features: int):
        """The distinct (D, D) matrices a model stores, with their index in messages.

        Returns a list of ``(suffix, matrix)``: ``("[k]", Sigma_k)`` per component, or a
        single ``("", Sigma)`` for a shared covariance.
        """
        cov = np.asarray(covariances)
        if self.shared:
            return [("", self.component_covariance(cov, 0, n_features))]
        return [
            (f"[{k}]", self.component_covariance(cov, k, n_features))
            for k in range(n_components)
        ]

    def from_full(self, full, weights) -> np.ndarray:
        """Project a (K, D, D) stack of covariances onto the family (family's shape).

        The projection keeps what the family can represent: the diagonal, the mean
        variance, or the weighted mean of the matrices for a shared covariance.
        """
        raise NotImplementedError

    # -- statistics and the M-step -----------------------------------------------------
    def scatter(self, Xc, resp) -> np.ndarray:
        """``s2`` of centred rows ``Xc`` (n, D) with weighted responsibilities (n, K)."""
        raise NotImplementedError

    def moved_scatter(self, s2, s1, nk, delta) -> np.ndarray:
        """``s2`` about ``c - delta`` from ``s2`` and ``s1`` about ``c`` (exact algebra).

        ``s2' = s2 + s1 delta^T + delta s1^T + N delta delta^T``, reduced as ``s2`` is.
        """
        raise NotImplementedError

    def m_step_covariances(
        self, nk, s1, s2, reg_covar: float, guard: float = 0.0, previous=None
    ):
        """Covariances from summed statistics (MATH.md, M-step), plus ``reg_covar``.

        ``Sigma_k = (s2_k - s1_k d_k^T) / (N_k + guard)`` with ``d_k = s1_k / N_k`` (the
        exact ``N_k``, so no ``guard * |mu - c|^2`` of cancellation is left behind), reduced
        as the family's ``s2`` is, symmetrised, plus ``reg_covar`` on the diagonal.

        ``previous`` is the current covariances in the family's storage shape, or None (a
        start from responsibilities). Closed-form families ignore it; families whose M-step
        is iterative start from it, so that every M-step raises the expected complete-data
        log-likelihood (generalised EM stays monotone), and otherwise from a closed-form
        start.
        """
        raise NotImplementedError

    def solve_scatter(self, W, n, n_features: int, previous=None):
        """Covariances maximising ``-1/2 sum_k [n_k log|Sigma_k| + tr(W_k Sigma_k^-1)]``
        under the family's constraint, for scatters ``W`` reduced as the family's
        ``statistic`` and counts ``n`` (K,): the M-step's update, used by the MAP M-step
        (:meth:`map_covariances`) with the prior's scatters and counts. ``previous`` as in
        :meth:`m_step_covariances`."""
        raise NotImplementedError

    def map_covariances(
        self, nk, s1, s2, shift, prior, reg_covar: float, guard: float = 0.0, previous=None
    ):
        """``(means, covariances)``: the posterior mode under the conjugate prior ``prior``
        (a resolved :class:`gaussmix._prior.Prior`), from summed statistics about ``shift``.

        The mean's mode is ``(N_k xbar_k + kappa mu_P) / (N_k + kappa)``; the covariances are
        :meth:`solve_scatter` of the prior-augmented scatters and counts (see
        :mod:`gaussmix._prior`). ``reg_covar`` enters the scatter as in the M-step.
        """
        from .._prior import prior_scatter

        W, n, means = prior_scatter(
            self.statistic, nk, s1, s2, shift, prior, reg_covar, guard
        )
        return means, self.solve_scatter(W, n, np.shape(s1)[1], previous)

    # -- mclust's conjugate prior (gaussmix._prior) -------------------------------------
    def prior_terms(self, dof: float, n_components: int, n_features: int):
        """``(c_k, f)`` of mclust's conjugate prior for this family (Fraley & Raftery 2007;
        table in :mod:`gaussmix._prior`): the count ``c_k`` the prior adds to each
        component and the multiple ``f`` of the prior scale each component's scatter gets;
        None when the family has no update under the prior (as in mclust)."""
        return None

    @property
    def has_prior(self) -> bool:
        """True when the family has an update under mclust's conjugate prior."""
        return self.prior_terms(1.0, 1, 1) is not None

    # -- many mixtures at once (model selection's lean path, gaussmix._batch) ----------
    def batched_covariances(self, W, n_k, previous=None) -> np.ndarray:
        """(S, K, D, D) covariances of S mixtures maximising the expected complete-data
        log-likelihood under the family's constraint (:meth:`solve_scatter` for each).

        ``W``: the regularised scatters about the new means, ``W_k + reg_covar n_k I``, as
        (S, K, D) diagonals when the family's ``statistic`` is "diagonal" or "trace" (for
        "trace", every entry the D-th part of the trace), else as (S, K, D, D) symmetric
        matrices; ``n_k`` (S, K) the counts; ``previous`` (S, K, D, D) the current
        covariances (finite and positive definite: the start of an iterative update) or
        None. Runs under the caller's ``np.errstate``; conventions and helpers in
        :mod:`gaussmix.families._batched`.
        """
        raise NotImplementedError(f"no batched M-step for the {self.name} family")

    #: A function solving the mixtures of several families in one call, or None:
    #: ``joint_solver(W, n_k, previous, parameters)`` with one ``joint_parameter`` per
    #: mixture (EVE and VVE share the common-orientation sweeps: one loop for both).
    joint_solver = None
    joint_parameter = None

    def batched_projection(self, cov) -> np.ndarray:
        """(S, K, D, D) covariances moved onto the family's constraint: each shared piece
        becomes the mean of the components' pieces (volumes and shapes as geometric means,
        orientations as common eigenvectors); covariances that satisfy the constraint come
        back unchanged (to rounding). For SQUAREM's extrapolations, which need not satisfy
        a constraint that is not linear; one that is not positive definite gives
        non-finite values. Runs under the caller's ``np.errstate``."""
        raise NotImplementedError(f"no batched projection for the {self.name} family")

    # -- checks ------------------------------------------------------------------------
    def check_precisions_init(self, precisions) -> None:
        """Raise ValueError unless every precision is valid (shape already checked)."""
        raise NotImplementedError

    def variance_checks(self, covariances, means, scale):
        """The smallest variances to hold against the regularisation floor (degeneracy).

        Yields ``(key, variance, mean_sq, data_var, template)``: ``key`` the component
        (-1 for a shared covariance), ``variance`` the smallest variance of the family's
        free directions, ``mean_sq`` the squared mean along it, ``data_var`` the data's
        variance along it (from ``scale``, the data's (D, D) covariance) and ``template`` the
        sentence reporting it, with ``{var}``, ``{reg}`` and ``{data}`` to fill in.
        """
        raise NotImplementedError


class MatrixFamily(CovarianceFamily):
    """Families storing (D, D) matrices, with an upper-triangular precision Cholesky factor.

    ``L = inv(C).T`` where ``C`` is the lower Cholesky factor of the covariance.
    """

    @staticmethod
    def _triangular_inverse_transpose(chol: np.ndarray) -> np.ndarray:
        """``inv(C).T`` for lower-triangular C (stacked), exactly upper triangular.

        ``inv(C).T = inv(C.T)``, C.T upper triangular: the E-step's blocked triangular
        inverse (a third of the arithmetic of a general one from 48 features on; 0.8
        against 2.8 ms at K = 8, D = 128, on the serial path between two E-steps).
        """
        n_features = chol.shape[-1]
        if n_features < _INVERSE_SPLIT:  # LAPACK's solve, as small as it gets
            eye = np.broadcast_to(np.eye(n_features), chol.shape)
            inv = np.linalg.solve(chol, eye)
            return np.triu(np.swapaxes(inv, -1, -2))
        stack = np.asarray(chol, dtype=np.float64)
        flat = stack.reshape(-1, n_features, n_features)
        inv = _inverse_factor(np.swapaxes(flat, -1, -2))
        return np.triu(inv.reshape(stack.shape))

    @staticmethod
    def _cholesky_or_raise(matrices: np.ndarray, reg_covar: float, names) -> np.ndarray:
        try:
            chol = np.linalg.cholesky(matrices)
            if np.isfinite(chol).all():
                return chol
            # LAPACK factors a matrix holding NaN without complaint (an M-step of a
            # shared shape with a component on one point and reg_covar=0: its volume is
            # 0, the shape 0/0); the fit would go on with NaN parameters.
            stack = matrices.reshape(-1, *matrices.shape[-2:])
            bad = np.flatnonzero(~np.isfinite(chol.reshape(stack.shape)).all(axis=(1, 2)))
            raise collapse_error(names[int(bad[0])], reg_covar, "its entries are not finite")
        except np.linalg.LinAlgError:
            stack = matrices.reshape(-1, *matrices.shape[-2:])
            for name, matrix in zip(names, stack, strict=True):
                try:
                    np.linalg.cholesky(matrix)
                except np.linalg.LinAlgError:
                    smallest = np.linalg.eigvalsh(matrix).min()
                    raise collapse_error(
                        name, reg_covar, f"smallest eigenvalue {smallest:.3g}"
                    ) from None
            raise

    def _matrix_names(self, covariances) -> list[str]:
        if self.shared:
            return [f"the {self.name} covariance (all components)"]
        return [f"component {k}" for k in range(covariances.shape[0])]

    def precision_cholesky(self, covariances, reg_covar: float = 0.0) -> np.ndarray:
        covariances = np.asarray(covariances, dtype=np.float64)
        chol = self._cholesky_or_raise(covariances, reg_covar, self._matrix_names(covariances))
        return self._triangular_inverse_transpose(chol)

    def precision_cholesky_from_precisions(self, precisions) -> np.ndarray:
        """Upper-triangular ``U`` with ``precision = U @ U.T``, straight from precisions.

        Reversing rows and columns turns the lower Cholesky factor of the reversed matrix
        into the upper factor of the original: ``J P J = L L.T`` gives ``P = (J L J)(J L J).T``.
        """
        flip = np.asarray(precisions, dtype=np.float64)[..., ::-1, ::-1]
        return np.linalg.cholesky(flip)[..., ::-1, ::-1]

    def precisions_from_cholesky(self, prec_chol) -> np.ndarray:
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)

    def covariances_from_precisions(self, prec_chol) -> np.ndarray:
        """The inverse of ``L @ L.T``, computed as ``inv(L).T @ inv(L)``."""
        inv = np.linalg.inv(np.asarray(prec_chol, dtype=np.float64))
        return np.swapaxes(inv, -1, -2) @ inv

    def precisions(self, covariances) -> np.ndarray:
        inv = np.linalg.inv(np.asarray(covariances, dtype=np.float64))
        return (inv + np.swapaxes(inv, -1, -2)) / 2.0

    def log_det_cholesky(self, prec_chol, n_features: int):
        """The sum of the logs of the triangular factor's diagonal."""
        return np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(axis=-1)

    @staticmethod
    def _moved_matrix(s1, nk, delta) -> np.ndarray:
        """Per component ``s1 delta^T + delta s1^T + N delta delta^T``, (K, D, D)."""
        cross = s1[:, :, None] * delta[:, None, :]
        outer = nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
        return cross + np.swapaxes(cross, 1, 2) + outer

    def check_precisions_init(self, precisions) -> None:
        if self.shared:
            _check_spd(precisions, "precisions_init")
            return
        for k, matrix in enumerate(precisions):
            _check_spd(matrix, f"precisions_init[{k}] (component {k})")

    def variance_checks(self, covariances, means, scale):
        K, D = means.shape
        cov = np.asarray(covariances, dtype=np.float64)
        stack = cov.reshape(1, D, D) if self.shared else cov.reshape(K, D, D)
        for k, matrix in enumerate(stack):
            eigval, eigvec = np.linalg.eigh(matrix)
            lam, v = float(eigval[0]), eigvec[:, 0]
            mean_sq = float(np.max((means @ v) ** 2) if self.shared else (means[k] @ v) ** 2)
            template = (
                f"its covariance's smallest eigenvalue {{var}} along {direction_words(v)} is "
                "at the regularisation floor (reg_covar={reg}; the data's variance there is "
                "{data})"
            )
            yield (-1 if self.shared else k), lam, mean_sq, float(v @ scale @ v), template


class VarianceFamily(CovarianceFamily):
    """Families storing variances (axis-aligned): ``L = 1 / sqrt(variance)`` elementwise."""

    def precision_cholesky(self, covariances, reg_covar: float = 0.0) -> np.ndarray:
        covariances = np.asarray(covariances, dtype=np.float64)
        bad = np.argwhere(~(covariances > 0))
        if bad.size:
            k, *d = bad[0]
            where = f" of feature {d[0]}" if d else ""
            raise collapse_error(
                f"component {k}", reg_covar, f"variance {covariances[tuple(bad[0])]:.3g}{where}"
            )
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions) -> np.ndarray:
        return np.sqrt(np.asarray(precisions, dtype=np.float64))

    def precisions_from_cholesky(self, prec_chol) -> np.ndarray:
        return prec_chol**2

    def covariances_from_precisions(self, prec_chol) -> np.ndarray:
        return 1.0 / np.asarray(prec_chol, dtype=np.float64) ** 2

    def precisions(self, covariances) -> np.ndarray:
        return 1.0 / np.asarray(covariances, dtype=np.float64)

    def check_precisions_init(self, precisions) -> None:
        if (precisions <= 0).any():
            raise ValueError(
                f"precisions_init for covariance_type={self.name!r} must be positive; "
                f"found {int((precisions <= 0).sum())} value(s) <= 0."
            )


def _check_spd(matrix, name):
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-12 * np.abs(matrix).max()):
        raise ValueError(f"{name} must be symmetric; it is not.")
    if np.linalg.eigvalsh(matrix.astype(np.float64)).min() <= 0:
        raise ValueError(f"{name} must be positive definite; it has an eigenvalue <= 0.")
