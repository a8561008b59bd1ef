"""Updates of many mixtures at once: the shared pieces of the families' batched M-steps.

Model selection (:mod:`gaussmix._batch`) runs EM on S mixtures of K components at once,
every covariance stored as a (D, D) matrix: arrays with a leading mixture axis, (S, K, D, D)
covariances and scatters, (S, K, D) diagonals, (S, K) counts. Each family's
``batched_covariances`` (its constrained M-step for all S mixtures) and
``batched_projection`` (onto its constraint, after an extrapolation) are written with the
helpers below; the stacks are small, so every step is a few NumPy calls on the whole stack
(the calls' overhead, not the arithmetic, is most of the time). They run under the caller's
``np.errstate`` (:mod:`gaussmix._batch` ignores division by zero, invalid values and
overflow there: a mixture gone astray gets non-finite covariances, which its E-step rejects).

The iterative updates (VEI, VEE, VEV, EVE, VVE) set one block (volumes, shape, orientation)
at a time to its exact maximiser given the others, so the expected complete-data
log-likelihood never falls. From the current covariances (``previous``) they take at most
``WARM_ROUNDS`` rounds (``WARM_SWEEPS`` sweeps of plane rotations for an orientation) per EM
step: generalised EM, monotone, whose fixed points are the constrained maxima. From a
partition (no ``previous``) they take up to ``COLD_ROUNDS`` (``COLD_SWEEPS``). They stop
earlier when the shared piece moves by less than ``INNER_TOL`` (relative; for an
orientation, the sine of every plane rotation).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "COLD_ROUNDS", "COLD_SWEEPS", "INNER_TOL", "WARM_ROUNDS", "WARM_SWEEPS",
    "common_orientation", "diagonal_in", "diagonal_view", "geometric_mean", "identity",
    "largest", "normalised", "orientation_projection", "rebuilt", "spd_inverse",
]

# From the previous covariances, few rounds: EM's next step moves the statistics anyway,
# and each round costs a dozen calls on the whole stack. Measured on the 14-model grids of
# Old Faithful and iris, random_state 0 to 4: 2 rounds and 1 sweep took 15% less time
# than 5 and 3, with the same summed log-likelihood of the 126 grid points on average
# over the seeds (20 rounds had given the same fits as 5, 10% slower; 1 round lost up to
# 23 on Old Faithful).
WARM_ROUNDS = 2
COLD_ROUNDS = 200
INNER_TOL = 1e-9
WARM_SWEEPS = 1  # each costs D - 1 rounds of rotations (D for odd D)
COLD_SWEEPS = 30
_TINY = np.finfo(np.float64).tiny


@functools.lru_cache(maxsize=64)
def identity(D):
    """The (D, D) identity (cached: never write into it)."""
    return np.eye(D)


def diagonal_view(a):
    """A writeable view of the diagonals of a stack of (D, D) matrices (basic slicing when
    the stack is C-contiguous, else the strided view ``np.einsum`` returns)."""
    D = a.shape[-1]
    if a.flags.c_contiguous:
        return a.reshape(*a.shape[:-2], D * D)[..., :: D + 1]
    return np.einsum("...ii->...i", a)


def geometric_mean(values, axis=-1):
    """``exp(mean(log(values)))`` along ``axis``.

    (sum / n rather than np.mean: this runs a few thousand times per selection, on small
    arrays, where np.mean's Python wrapper costs more than the arithmetic.)
    """
    return np.exp(np.log(values).sum(axis=axis) / values.shape[axis])


def largest(values) -> float:
    """``max(|values|)``, 0 for none (np.max's Python wrapper costs more here)."""
    return np.maximum.reduce(np.abs(values), axis=None, initial=0.0)


def spd_inverse(matrices):
    """Inverses of a stack of symmetric positive semi-definite matrices. ``np.linalg.inv``
    as a rule; when one of the stack is singular to working precision (a start holding a
    far outlier: eigenvalues 1e24 apart), the whole stack through eigenvalues floored at
    eps times the largest, so that one start cannot stop the others."""
    try:
        return np.linalg.inv(matrices)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(matrices)
        floor = np.finfo(np.float64).eps * np.max(np.abs(values), axis=-1, keepdims=True)
        values = np.maximum(values, np.maximum(floor, 1e-300))
        return (vectors / values[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def normalised(matrices):
    """Each (D, D) matrix divided by ``det^(1/D)`` (determinant one)."""
    D = matrices.shape[-1]
    _, log_det = np.linalg.slogdet(matrices)
    return matrices / np.exp(log_det / D)[..., None, None]


# (Products of small stacked matrices by matmul: np.einsum with three operands loops in C
# over every index, 3 to 10 times slower at D = 2 to 5.)
def diagonal_in(Dm, W):
    """(S, K, d) diagonals of ``Dm^T W_k Dm``: ``Dm`` (S, d, d), ``W`` (S, K, d, d)."""
    return np.sum((W @ Dm[:, None]) * Dm[:, None], axis=-2)


def rebuilt(vectors, values):
    """(..., d, d) ``V diag(values) V^T``: ``vectors`` (..., d, d) broadcast with the
    (..., d) ``values``."""
    return (vectors * values[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def symmetrised(matrices):
    """``(A + A^T) / 2`` over the last two axes."""
    return 0.5 * (matrices + np.swapaxes(matrices, -1, -2))


def common_orientation(W, n_k, previous, equal_volume, sweeps=None, objective_tol=None):
    """EVE and VVE (Sigma_k = D diag(sigma_k) D^T, one orientation D), (S, K, d, d): the
    variances given D (their exact maximiser) alternated with sweeps of plane rotations of
    D (Jacobi's method, exact per plane: module :mod:`gaussmix.families._eigen`),
    vectorised over the mixtures. ``W`` (S, K, d, d) the regularised scatters, ``n_k``
    (S, K), ``previous`` (S, K, d, d) or None; ``equal_volume`` (a bool, or one per
    mixture): EVE's variances ``lambda A_k`` (|A_k| = 1), else VVE's ``lambda_k A_k``.

    At most ``WARM_SWEEPS`` sweeps from the previous covariances' common eigenvectors,
    else ``COLD_SWEEPS`` from the pooled scatter's, or ``sweeps``; they stop when no
    rotation of a sweep has a sine above ``INNER_TOL``, or, with ``objective_tol`` (a
    single fit run to convergence), when the relative change of every mixture's objective
    ``sum_k n_k log|Sigma_k| + tr(W_k Sigma_k^-1)`` between two sweeps is at most that.
    """
    S, K, d = W.shape[0], W.shape[1], W.shape[-1]
    n_total = n_k.sum(axis=1)
    dd = d * d

    mixed = np.ndim(equal_volume) > 0
    if mixed:
        if equal_volume.all() or not equal_volume.any():
            equal_volume, mixed = bool(equal_volume[0]), False
        else:
            eve = equal_volume[:, None, None]
    add = np.add.reduce
    n_col = n_k[..., None]
    n_total_col = n_total[:, None, None]
    with_volume = mixed or equal_volume

    def inverse_variances(diag):  # (S, K, d): 1 / the variances given D
        diag = np.maximum(diag, 1e-300)
        if with_volume:  # EVE: lambda A_k, |A_k| = 1; 1 / (lambda diag / g_k)
            g = np.exp(add(np.log(diag), axis=-1) / d)[..., None]  # (S, K, 1)
            inverse = g / (add(g, axis=1, keepdims=True) / n_total_col * diag)
            if not mixed:
                return inverse
            return np.where(eve, inverse, n_col / diag)
        return n_col / diag  # VVE

    if previous is not None:  # the previous covariances' common eigenvectors
        scaled = previous / np.trace(previous, axis1=-2, axis2=-1)[..., None, None]
        mix = np.einsum("k,skij->sij", _root_weights(K), scaled)
        Dm = np.linalg.eigh(mix)[1]
    else:
        Dm = np.linalg.eigh(W.sum(axis=1))[1]
    if sweeps is None:
        sweeps = COLD_SWEEPS if previous is None else WARM_SWEEPS
    old = np.inf
    frozen = None  # (mixed families) the mixtures whose family's sweeps have stopped
    planes = _plane_rounds(d)
    if not planes:  # one feature: no plane to turn in, the orientation is (1)
        sweeps = 0
    half_sign = _HALF_SIGN
    no_rotation = _NO_ROTATION
    matmul, hypot, where, sqrt, maximum = np.matmul, np.hypot, np.where, np.sqrt, np.maximum
    for _ in range(sweeps):
        Dt = np.swapaxes(Dm, -1, -2)[:, None]
        B = matmul(matmul(Dt, W), Dm[:, None])  # (anew: no drift)
        if objective_tol is not None:
            diag = diagonal_view(B)
            inverse = inverse_variances(diag)
            value = (n_k[..., None] * -np.log(inverse) + diag * inverse).sum(axis=(1, 2))
            if np.all(np.abs(old - value) <= objective_tol * np.maximum(np.abs(value), _TINY)):
                break
            old = value
        sines = []
        for pairs, m, picks, build, base in planes:
            Bf = B.reshape(S, K, dd)
            w = inverse_variances(Bf[..., :: d + 1])[..., pairs]
            dw = w[..., :m] - w[..., m:]  # (S, K, m)
            # p = sum_k dw (b_II - b_JJ) / 2 and q = sum_k dw b_IJ, (S, 2, m)
            pq = np.einsum("skm,skjm->sjm", dw, matmul(Bf, picks).reshape(S, K, 2, m))
            p, q = pq[:, 0], pq[:, 1]
            r = hypot(p, q)
            active = p + r > 1e-15 * (np.abs(p) + np.abs(q))
            if frozen is not None:
                active &= ~frozen[:, None]  # a family whose sweeps have stopped
            # (cos 2t, sin 2t) = -(p, q) / r; then cos t, and sin t (with the sign of sin 2t)
            cs2 = where(active[:, None], pq / -r[:, None], no_rotation)
            cs = sqrt(maximum(0.5 + half_sign * cs2[:, :1], 0.0))
            np.copysign(cs[:, 1], cs2[:, 1], out=cs[:, 1])
            sines.append(cs[:, 1])
            # D <- D R and B <- R^T B R, R the identity with [[c, -s], [s, c]] per plane
            R = (matmul(cs.reshape(S, 2 * m), build) + base).reshape(S, d, d)
            Dm = matmul(Dm, R)
            B = matmul(matmul(np.swapaxes(R, -1, -2)[:, None], B), R[:, None])
        if objective_tol is not None:
            continue
        if not mixed:
            if not largest(np.concatenate(sines, axis=1)) > INNER_TOL:
                break
            continue
        # EVE's and VVE's mixtures stop as each family's own loop would: a family whose
        # rotations all fell below INNER_TOL keeps its orientation from now on
        moved = np.maximum.reduce(np.abs(np.concatenate(sines, axis=1)), axis=1)
        if frozen is None:
            frozen = np.zeros(S, dtype=bool)
        for family in (equal_volume, ~equal_volume):
            if not frozen[family].all() and not moved[family].max() > INNER_TOL:
                frozen[family] = True
        if frozen.all():
            break
    if objective_tol is not None:  # exactly orthogonal again after many rotations
        Dm = np.linalg.qr(Dm)[0]
    sigma = 1.0 / inverse_variances(diagonal_in(Dm, W))
    return symmetrised(rebuilt(Dm[:, None], sigma))


def orientation_projection(cov, equal_volume):
    """(S, K, d, d) covariances onto one orientation per mixture (EVE, VVE): the
    eigenvectors of a combination of the matrices with distinct irrational weights (the
    common ones, when they have them), each matrix's variances along them, and (EVE) their
    volumes replaced by the geometric mean."""
    K, D = cov.shape[1], cov.shape[-1]
    if not np.isfinite(cov).all():
        return np.full(cov.shape, np.nan)
    scaled = cov / diagonal_view(cov).sum(axis=-1)[..., None, None]
    mix = np.einsum("k,skij->sij", _root_weights(K), scaled)
    Dm = np.linalg.eigh(symmetrised(mix))[1]
    sigma = diagonal_in(Dm, cov)
    if equal_volume:
        log_sigma = np.log(sigma)
        log_vol = log_sigma.sum(axis=-1, keepdims=True) / D
        sigma = np.exp(log_sigma - log_vol + log_vol.sum(axis=1, keepdims=True) / K)
    return symmetrised(rebuilt(Dm[:, None], sigma))


@functools.lru_cache(maxsize=64)
def _root_weights(K):
    """sqrt(2), ..., sqrt(K + 1): distinct irrational weights (common eigenvectors)."""
    return np.sqrt(np.arange(2, K + 2))


_NO_ROTATION = np.array([[1.0], [0.0]])  # (cos 2t, sin 2t) of planes left as they are
# (cos t, sin t) = sqrt(1/2 +- cos 2t / 2): the same bits as sqrt((1 +- cos 2t) / 2)
_HALF_SIGN = np.array([[0.5], [-0.5]])


@functools.lru_cache(maxsize=64)
def _plane_rounds(d):
    """Per round of disjoint planes (I, J) (:func:`gaussmix.families._eigen._round_robin`):
    ``(pairs, m, picks, build, base)``: the indices I then J; the number m of planes;
    the (d d, 2 m) matrix taking a flattened B to ``(b_II - b_JJ) / 2`` and ``b_IJ``; the
    (2 m, d d) matrix taking ``(cos t, sin t)`` to the rotation's plane entries; and the
    flattened identity without them. (Products with these 0, +-1/2 and +-1 matrices are
    exact: one term of each sum is not zero, or two that are halved.)"""
    from ._eigen import _round_robin

    out = []
    dd = d * d
    for I, J in _round_robin(d):
        m = I.size
        planes = np.arange(m)
        picks = np.zeros((dd, 2 * m))
        picks[I * d + I, planes] = 0.5
        picks[J * d + J, planes] = -0.5
        picks[I * d + J, m + planes] = 1.0
        build = np.zeros((2 * m, dd))
        build[planes, I * d + I] = 1.0  # R_II = R_JJ = c, R_IJ = -s, R_JI = s
        build[planes, J * d + J] = 1.0
        build[m + planes, I * d + J] = -1.0
        build[m + planes, J * d + I] = 1.0
        base = np.eye(d).ravel()
        base[np.concatenate((I * d + I, J * d + J))] = 0.0
        out.append((np.concatenate((I, J)), m, picks, build, base))
    return tuple(out)


def diagonal_projection(cov, pool):
    """(S, K, D, D) diagonal covariances onto VEI's constraint (``pool="shape"``: one shape,
    the geometric mean of the components') or EVI's (``pool="volume"``: one volume)."""
    K, D = cov.shape[1], cov.shape[-1]
    diag = diagonal_view(cov)
    log_diag = np.log(diag)
    log_vol = log_diag.sum(axis=-1, keepdims=True) / D  # (S, K, 1)
    log_shape = log_diag - log_vol
    if pool == "shape":
        log_shape = np.broadcast_to(log_shape.sum(axis=1, keepdims=True) / K, diag.shape)
    else:
        log_vol = np.broadcast_to(log_vol.sum(axis=1, keepdims=True) / K, log_vol.shape)
    return np.exp(log_vol + log_shape)[..., None] * identity(D)


def determinant_projection(cov, pool):
    """(S, K, D, D) covariances onto VEE's constraint (``pool="unit"``: one matrix of
    determinant one, the normalised mean of the components') or EVV's (``pool="volume"``:
    one determinant, the geometric mean)."""
    K, D = cov.shape[1], cov.shape[-1]
    sign, logdet = np.linalg.slogdet(cov)
    log_vol = np.where(sign > 0, logdet / D, np.nan)  # (S, K)
    unit = cov / np.exp(log_vol)[..., None, None]
    if pool == "unit":
        unit = np.broadcast_to(normalised(unit.sum(axis=1) / K)[:, None], cov.shape)
    else:
        log_vol = np.broadcast_to(log_vol.sum(axis=1, keepdims=True) / K, log_vol.shape)
    return symmetrised(np.exp(log_vol)[..., None, None] * unit)


def eigenvalue_projection(cov, pool_volume):
    """(S, K, D, D) covariances onto VEV's constraint (one shape: the geometric mean of the
    components' normalised eigenvalues, in increasing order) or, ``pool_volume``, EEV's
    (one volume too)."""
    K, D = cov.shape[1], cov.shape[-1]
    eigval, eigvec = np.linalg.eigh(symmetrised(cov))
    log_eig = np.log(eigval)
    log_vol = log_eig.sum(axis=-1, keepdims=True) / D
    log_shape = np.broadcast_to((log_eig - log_vol).sum(axis=1, keepdims=True) / K,
                                eigval.shape)
    if pool_volume:
        log_vol = np.broadcast_to(log_vol.sum(axis=1, keepdims=True) / K, log_vol.shape)
    return symmetrised(rebuilt(eigvec, np.exp(log_vol + log_shape)))
