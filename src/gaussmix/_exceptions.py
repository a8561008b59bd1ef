"""Exception and warning classes of gaussmix.

They mirror scikit-learn's so that code written against ``sklearn.exceptions`` keeps
working, without importing scikit-learn.
"""

__all__ = ["ConvergenceWarning", "DegenerateFitWarning", "NotFittedError", "RegularizationWarning"]


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


class RegularizationWarning(UserWarning):
    """Issued when a feature's variance is so small that ``reg_covar`` dominates it.

    ``reg_covar`` is added to every covariance's diagonal in the data's own units (as in
    scikit-learn); on a feature measured in tiny units (or constant) it swamps the data's
    spread, and the fit describes ``reg_covar`` more than the data.
    """
