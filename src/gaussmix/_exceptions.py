"""Exception and warning classes of gaussmix.

They mirror scikit-learn's so that code written against ``sklearn.exceptions`` keeps
working, without importing scikit-learn.
"""

__all__ = ["ConvergenceWarning", "DegenerateFitWarning", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit``.

    A subclass of both :class:`ValueError` and :class:`AttributeError`, as scikit-learn's,
    so ``hasattr``-style checks and ``except ValueError`` both work.
    """


class ConvergenceWarning(UserWarning):
    """Issued when the best EM run stopped at ``max_iter`` before the tolerance was met."""


class DegenerateFitWarning(UserWarning):
    """Issued when a fit looks like a spurious maximizer of the likelihood.

    Typical causes: a component collapsed onto a handful of (often repeated) points, so
    its covariance sits at the ``reg_covar`` floor and its likelihood is unbounded.
    """
