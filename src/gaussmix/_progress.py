"""Live progress on stderr for the command line: EM iterations and the selection grid.

Uses tqdm, imported lazily. Everything here silently does nothing when tqdm is missing,
when the stream is not a terminal, or when the display is disabled (``--quiet``), so callers
never need to check.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

_MISSING = object()


def _tqdm(total: int, desc: str, file: TextIO, unit: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, file=file, unit=unit, leave=False, dynamic_ncols=True)


def enabled(quiet: bool = False, file: TextIO | None = None) -> bool:
    """Whether a live display should be shown: not quiet and ``file`` (stderr) is a terminal."""
    if quiet:
        return False
    stream = sys.stderr if file is None else file
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def fit_progress(
    estimator: Any,
    *,
    n_samples: int | None = None,
    show: bool = True,
    file: TextIO | None = None,
    desc: str = "EM",
) -> Iterator[Any]:
    """Show EM iterations (log-likelihood, change) while ``estimator`` fits.

    Installs ``estimator._callback(n_iter, lower_bound, change)`` for the duration of the
    block (gaussmix's GaussianMixture calls it once per EM iteration; an estimator that does
    not simply never calls it) and restores the previous value afterwards.

    Parameters
    ----------
    estimator : GaussianMixture
    n_samples : int, optional
        Shows the total log-likelihood (lower bound times ``n_samples``) when given.
    show : bool, default=True
        False (or a non-terminal ``file``) disables the display.
    file : text stream, optional
        Default ``sys.stderr``.
    desc : str
        Label in front of the bar.

    Yields
    ------
    bar : tqdm or None
        None when disabled.
    """
    stream = sys.stderr if file is None else file
    bar = None
    if show:
        max_iter = int(getattr(estimator, "max_iter", 100) or 100)
        bar = _tqdm(max_iter, desc, stream, "it")
    if bar is None:
        yield None
        return
    n_init = int(getattr(estimator, "n_init", 1) or 1)
    state = {"init": 1, "last": 0}

    def callback(n_iter: int, lower_bound: float, change: float) -> None:
        if n_iter < state["last"]:  # a new initialisation started
            state["init"] += 1
            bar.reset()
        state["last"] = n_iter
        if n_init > 1:
            bar.set_description(f"{desc} init {min(state['init'], n_init)}/{n_init}", False)
        value = lower_bound * n_samples if n_samples else lower_bound
        label = "log-lik" if n_samples else "mean log-lik"
        change_text = "-" if change is None or not math.isfinite(change) else f"{change:.2e}"
        bar.set_postfix_str(f"{label} {value:.6g}, change {change_text}", refresh=False)
        bar.update(max(0, n_iter - bar.n))

    previous = getattr(estimator, "_callback", _MISSING)
    estimator._callback = callback
    try:
        yield bar
    finally:
        if previous is _MISSING:
            with contextlib.suppress(AttributeError):
                del estimator._callback
        else:
            estimator._callback = previous
        bar.close()


@contextlib.contextmanager
def grid_progress(
    *, show: bool = True, file: TextIO | None = None, desc: str = "models"
) -> Iterator[Callable[[int, int, str, int], None] | None]:
    """A ``progress(i, n, covariance_type, n_components)`` callable for ``select_model``.

    Parameters
    ----------
    show : bool, default=True
        False disables the display (the block then receives None).
    file : text stream, optional
        Default ``sys.stderr``.
    desc : str
        Label in front of the bar.

    Yields
    ------
    progress : callable or None
        Pass it as ``select_model(..., progress=progress)``.
    """
    stream = sys.stderr if file is None else file
    if not show:
        yield None
        return
    holder: dict[str, Any] = {}

    def progress(i: int, n: int, covariance_type: str, n_components: int) -> None:
        bar = holder.get("bar")
        if bar is None:
            bar = _tqdm(n, desc, stream, "model")
            if bar is None:
                holder["bar"] = False
                return
            holder["bar"] = bar
        elif bar is False:
            return
        bar.set_postfix_str(f"{covariance_type}, {n_components} components", refresh=False)
        # i counts models started (1-based) or finished (0-based); show at most n.
        bar.update(max(0, min(i, n) - bar.n))

    progress.holder = holder  # type: ignore[attr-defined]  # lets tests look at the bar
    try:
        yield progress
    finally:
        bar = holder.get("bar")
        if bar:
            bar.close()
