"""The ``gaussmix`` command: fit, select, predict, score, impute, sample, info, demo.

Files in (CSV/TSV with the header and delimiter detected, ``-`` for stdin, ``.npy``, Parquet
when pyarrow is installed), model files, tables and plots out. Every file is written
atomically, and a run that fails (or is stopped by Ctrl-C or SIGTERM) leaves no output behind.
An output folder holds one run's files: they are published together under a lock (a second
run into the same folder waits), and files of an earlier run that this one does not write
are removed and listed in the summary. A user error is one line on stderr and exit code 2
(``--debug`` adds the traceback); an internal failure exits with 1.

With ``--scheduler ADDRESS`` (or ``local:N``), ``fit``, ``select``, ``predict`` and ``score``
run on a Dask cluster: the data (``.npy`` files, folders of them, Parquet) stay on the
workers and row-wise outputs are computed and written one chunk at a time.

Missing values (empty, ``NA``, ``nan`` cells; NaN in ``.npy``; Parquet nulls) are used by a
fit, model selection (``-k auto``, ``-c auto``, ``select``: :mod:`gaussmix._missing_select`),
``predict``, ``score`` and ``impute`` (exact EM, see :mod:`gaussmix._missing`), also with
``--stream`` (online EM) and ``--scheduler``; only model selection on Dask refuses them.

This module is the commands, top to bottom: one function per command, the helpers they
share, the argument parser and :func:`main`. Reading data is in ``_readers``, writing
tables in ``_writers``, output folders in :mod:`gaussmix.io`, the printed summaries in
``_summary``, and the subsample of a Dask array that plots show in ``_cli_dask``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import numpy as np

from gaussmix import _progress, families
from gaussmix._readers import (
    Dataset,
    check_dask_input,
    is_lazy,
    model_columns,
    no_feature_name_warnings,
    printable,
    read_dask_data,
    read_data,
)
from gaussmix._summary import (
    compare_with_mclust,
    describe_model_file,
    information_criteria,
    selection_top,
)
from gaussmix._summary import selection_csv as _selection_csv  # a test replaces it here
from gaussmix._writers import (
    WRITE_ROWS,
    block_writer,
    csv_text,
    emit,
    emit_stream,
    table_writer,
)
from gaussmix.io import (
    ModelFileError,
    OutputDir,
    _document_from_json,
    model_from_dict,
    model_to_json,
    read_model_bytes,
    staged_outputs,
)

PROG = "gaussmix"
EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2
# mclust's 14 models in mclust's order, each by gaussmix's name (scikit-learn's for four).
ALL_COVARIANCE_TYPES = tuple(families.get(name).name for name in families.MCLUST_MODELS)
# scikit-learn's four (spherical, diag, tied, full), in mclust's order.
SKLEARN_COVARIANCE_TYPES = tuple(
    name for name in ALL_COVARIANCE_TYPES if families.get(name).mclust_name != name
)
COVARIANCE_TYPES = SKLEARN_COVARIANCE_TYPES  # (the old name)
# What -c accepts: scikit-learn's names and mclust's, all 14 models.
COVARIANCE_NAMES = tuple(n for f in families.all_families() for n in (f.name, *f.aliases))
# -c values that mean model selection over a set of covariance types: auto (select_model's
# default set), all (mclust's 14 models) and sklearn (scikit-learn's four).
COVARIANCE_PRESETS = ("auto", "all", "sklearn")
COVARIANCE_HELP = (
    "covariance types compared: auto (select_model's default set), all (mclust's 14 models: "
    + ", ".join(families.MCLUST_MODELS)
    + "), sklearn (scikit-learn's four: spherical, diag, tied, full), or a list of names "
    "such as VVV,EEE,VVE or full,tied (scikit-learn's or mclust's names)"
)
PLOT_INSTALL_HINT = 'pip install "gaussmix[plot]"'
DEFAULT_SEED = 0
DEFAULT_N_INIT = 3
DEFAULT_PASSES = 1  # fit --stream
DEFAULT_BATCH_SIZE = 5000  # fit --stream
# Every file fit/select/demo write into an output folder: a run removes those an earlier
# run recorded (in gaussmix.io.MANIFEST) that it does not write, so the folder never mixes
# two runs' files, and refuses a file of one of these names that gaussmix did not write.
OUTPUT_FILES = (
    "model.json", "assignments.csv", "selection.csv", "clusters.png", "loglik.png", "bic.png"
)
# Limits checked before any allocation (a bigger request ends in MemoryError otherwise).
MAX_COMPONENTS = 10_000  # per model (-k, --components)
MAX_GRID_COMPONENTS = 1_000  # numbers of components in one selection grid
MAX_SAMPLE_VALUES = 50_000_000  # n_samples x n_features drawn by `sample` (400 MB float64)


class UserError(Exception):
    """A problem with the command's input or arguments (exit code 2, no traceback)."""


# --------------------------------------------------------------------------------------
# The commands


def cmd_fit(args: argparse.Namespace) -> int:
    """gaussmix fit: one model, or automatic selection with -k auto / -c auto|all|sklearn|LIST."""
    args.covariance_given = args.covariance is not None
    if args.covariance is None:
        args.covariance = "full"
    # One covariance type (a single fit with -k N), or the types selection chooses among.
    args.single_covariance, types = _fit_covariances(args.covariance)
    if not (args.stream or args.resume):
        _refuse_stream_options(args)
    if args.stream or args.resume:
        if getattr(args, "prior", None) is not None:
            raise UserError(
                "--prior does not work with --stream or --resume (online EM has no MAP "
                "update): remove --prior, or fit the data in one piece without --stream"
            )
        return cmd_fit_stream(args)
    ds = _input(args, args.dtype)
    _check_output_folder(args)
    if args.n_components == "auto":
        k_values = _parse_components(args.components)
    else:
        try:
            k_values = [int(args.n_components)]
        except ValueError:
            raise UserError(
                f"-k/--n-components must be a positive integer or auto; got {args.n_components!r}"
            ) from None
        if k_values[0] < 1:
            raise UserError(f"-k/--n-components must be >= 1; got {k_values[0]}")
        _check_n_components(k_values[0], "-k/--n-components")
    _check_components(k_values, ds.X.shape[0])
    _refuse_empty_columns(ds)
    params = _estimator_params(args)
    with _columns_named_in_errors(ds.source, ds.names, ds.has_header):
        if args.n_components == "auto" or args.single_covariance is None:
            # -k auto, or -c naming several types (a set or a list): choose by --criterion,
            # over the types at the one K of -k N.
            result = _run_selection(ds.X, k_values, types, args.criterion, params, args)
            model = result.best_estimator_
        else:
            if args.jobs is not None:
                raise UserError(_JOBS_SINGLE_FIT)
            result = None
            params.update(n_components=k_values[0], covariance_type=args.single_covariance)
            # The robust start (select_model's starts) unless --init says otherwise: the
            # k-means start alone can stop in a poorer local optimum (Old Faithful, tied,
            # K=3).
            params.setdefault("init_params", "robust")
            model = _fit_one(ds.X, params, args)
    plots = _want_plots(args)
    with _output_folder(args) as staged:
        _fit_outputs(staged, model, ds, result, plots)
        written = staged.commit()
    summary = model.summary(ds.X, feature_names=ds.names, source=ds.source)
    if result is not None:
        summary = (
            f"Model selection by {result.criterion.upper()} (best first):\n"
            f"{selection_top(result)}\n\n{summary}"
        )
    _finish(args, summary, written, staged)
    return EXIT_OK


def cmd_fit_stream(args: argparse.Namespace) -> int:
    """gaussmix fit --stream / --resume: online EM over a file read in chunks."""
    from gaussmix import GaussianMixture
    from gaussmix._readers import open_chunked

    if args.passes is None:
        args.passes = DEFAULT_PASSES
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH_SIZE
    if args.passes < 1:
        raise UserError(f"--passes must be >= 1; got {args.passes}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.jobs is not None:
        raise UserError(_JOBS_SINGLE_FIT)
    _check_output_folder(args)
    ignored = [flag for flag, value in (("--tol", args.tol), ("--max-iter", args.max_iter))
               if value is not None]
    if ignored:  # online EM runs --passes over the data, one M-step per batch
        raise UserError(f"{ignored[0]} has no effect with --stream or --resume (online EM "
                        "takes one step per batch); use --passes, or remove it")
    if args.resume:
        model = _load(args.resume)
        k = int(np.shape(model.means_)[0])
        if args.n_components not in ("auto", str(k)):
            raise UserError(
                f"--resume continues a model with {k} components; remove -k {args.n_components}"
            )
        family = families.of_model(model)
        if args.covariance_given and (
            args.single_covariance is None
            or families.get(args.single_covariance) is not family
        ):
            raise UserError(
                f"--resume continues a {family.name} model; remove -c {args.covariance}"
            )
        if args.init is not None:
            raise UserError("--resume continues a fitted model, which needs no start; "
                            f"remove --init {args.init}")
        data = open_chunked(args.data, args.columns, _model_dtype(model), _model_names(model))
        _align_chunked(model, data, bool(args.columns))
    else:
        if args.n_components == "auto" or args.single_covariance is None:
            raise UserError(
                "--stream fits one model: give -k N and a covariance type (model selection "
                "compares fits on all the rows; run 'gaussmix select' on a sample to choose)"
            )
        try:
            k = int(args.n_components)
        except ValueError:
            raise UserError(
                f"-k/--n-components must be a positive integer; got {args.n_components!r}"
            ) from None
        if k < 1:
            raise UserError(f"-k/--n-components must be >= 1; got {k}")
        params = _estimator_params(args)
        params.update(n_components=k, covariance_type=args.single_covariance)
        params.pop("max_iter", None)
        params.pop("tol", None)
        model = GaussianMixture(**params)
        data = open_chunked(args.data, args.columns, args.dtype)
    if args.passes > 1 and not data.rereadable:
        raise UserError("--passes > 1 needs a file: stdin can be read only once")
    n_rows = 0
    for n_pass in range(1, args.passes + 1):
        start = time.perf_counter()
        n_rows = n_batches = 0
        with _reported_warnings(), _columns_named_in_errors(
            data.source, data.names, data.has_header, args.batch_size
        ):
            for batch in data.batches(args.batch_size):
                model.partial_fit(batch)
                n_rows += batch.shape[0]
                n_batches += 1
        if not args.quiet:
            print(
                f"pass {n_pass}/{args.passes}: {n_rows:,} rows in {n_batches:,} batches, "
                f"running mean log-likelihood {model.lower_bound_:.6g} "
                f"({time.perf_counter() - start:.1f} s)",
                file=sys.stderr,
            )
        if args.checkpoint and n_pass < args.passes:
            with _output_folder(args) as staged:  # recorded like the final model.json
                staged.stage(
                    "model.json",
                    model_to_json(model, n_samples=n_rows, feature_names=list(data.names)),
                )
                staged.commit()
    if data.has_header and not args.resume:
        model.feature_names_in_ = np.asarray(data.names, dtype=object)
    text = model_to_json(model, n_samples=n_rows, feature_names=list(data.names))
    with _output_folder(args) as staged:
        path = staged.stage("model.json", text)
        written = staged.commit()
    summary = "\n".join(
        [
            f"Online EM over {data.source}: {n_rows:,} rows per pass in batches of "
            f"{args.batch_size:,}, {args.passes} pass{'es' if args.passes > 1 else ''}"
            + (f", resumed from {args.resume}" if args.resume else "")
            + ".",
            "",
            describe_model_file(model, _document_from_json(text, path), path),
        ]
    )
    _finish(args, summary, written, staged)
    return EXIT_OK


def _align_chunked(model: Any, data: Any, by_columns: bool) -> None:
    """Pick the chunked data's columns in the model's feature order (see model_columns)."""
    names = _model_names(model)
    if (
        names
        and data.has_header
        and set(names) == set(data.names)
        and len(set(data.names)) == len(data.names)
        and len(set(names)) == len(names)
    ):
        order = [data.names.index(n) for n in names]
        data.picked = [data.picked[i] for i in order]
        data.names = list(names)
        return
    empty = Dataset(np.empty((0, data.n_features)), list(data.names), data.has_header, data.source)
    model_columns(empty, names, int(model.n_features_in_), by_columns)


def cmd_select(args: argparse.Namespace) -> int:
    """gaussmix select: the model-selection table, the best model and bic.png."""
    ds = _input(args, args.dtype)
    _check_output_folder(args)
    k_values = _parse_components(args.components)
    types = _parse_covariances(args.covariance)
    _check_components(k_values, ds.X.shape[0])
    _refuse_empty_columns(ds)
    with _columns_named_in_errors(ds.source, ds.names, ds.has_header):
        result = _run_selection(
            ds.X, k_values, types, args.criterion, _estimator_params(args), args
        )
    model = result.best_estimator_
    plots = _want_plots(args)
    with _output_folder(args) as staged:
        _stage_model(staged, model, ds)
        staged.stage("selection.csv", _selection_csv(result))
        if plots:
            from gaussmix import plot

            _stage_figure(staged, "bic.png", plot.plot_bic(result))
        written = staged.commit()
    best = result.best_params_
    summary = (
        f"{result}\n\nbest by {result.criterion.upper()}: {best['covariance_type']} covariance, "
        f"{best['n_components']} components"
    )
    _finish(args, summary, written, staged)
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    """gaussmix predict: labels (and probabilities) as CSV."""
    model = _load(args.model)
    ds = _input(args, _model_dtype(model), prefer=_model_names(model))
    X = _aligned(model, ds, bool(args.columns))
    if args.proba:
        write = _assignments_writer(model, X)
    elif is_lazy(X):
        with no_feature_name_warnings():
            write = table_writer(X, ["row", "label"], [model.predict(X)])
    else:
        write = block_writer(X, ["row", "label"], lambda block: [_quiet(model.predict, block)])
    emit_stream(write, args.output)
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """gaussmix score: log-likelihood of data under a model, as CSV."""
    model = _load(args.model)
    ds = _input(args, _model_dtype(model), prefer=_model_names(model))
    X = _aligned(model, ds, bool(args.columns))
    header = ["row", "log_likelihood"]
    if args.per_sample and not is_lazy(X):
        emit_stream(
            block_writer(X, header, lambda block: [_quiet(model.score_samples, block)]),
            args.output,
        )
        return EXIT_OK
    n = int(X.shape[0])
    if is_lazy(X):
        with no_feature_name_warnings():
            log_density = model.score_samples(X)
        if args.per_sample:
            emit_stream(table_writer(X, header, [log_density]), args.output)
            return EXIT_OK
        total = float(log_density.sum().compute())
    else:  # block by block: no array of n log-densities
        total = sum(
            float(np.sum(_quiet(model.score_samples, X[start : start + WRITE_ROWS]),
                         dtype=np.float64))
            for start in range(0, n, WRITE_ROWS)
        )
    bic, aic = information_criteria(total, model._n_parameters(), n)
    text = csv_text(
        ["n_samples", "log_likelihood", "mean_log_likelihood", "bic", "aic"],
        [np.array([v]) for v in (n, total, total / n, bic, aic)],
    )
    emit(text, args.output)
    return EXIT_OK


def cmd_impute(args: argparse.Namespace) -> int:
    """gaussmix impute: the data with missing values replaced by E[x_m | x_o], as CSV."""
    model = _load(args.model)
    ds = _input(args, _model_dtype(model), prefer=_model_names(model))
    X = _aligned(model, ds, bool(args.columns))
    with no_feature_name_warnings():
        filled = model.impute(X)
    names = _model_names(model) or list(ds.names)
    if X is not ds.X and ds.has_header and set(names) <= set(ds.names):
        header = list(names)  # matched by name: the model's columns, in its order
    else:
        header = list(ds.names) if len(ds.names) == filled.shape[1] else list(names)
    emit(csv_text(header if ds.has_header else None, list(filled.T)), args.output)
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    """gaussmix sample: draw samples from a model, as CSV."""
    model = _load(args.model)
    if args.n_samples < 1:
        raise UserError(f"-n must be >= 1; got {args.n_samples}")
    n_features = int(model.n_features_in_)
    most = max(1, MAX_SAMPLE_VALUES // n_features)
    if args.n_samples > most:
        raise UserError(
            f"-n {args.n_samples} is more samples than one run draws from this "
            f"{n_features}-feature model (at most {most:,}: the samples are held in memory); "
            "draw them in several runs with different --seed values"
        )
    X, labels = model.sample(args.n_samples, random_state=args.seed)
    d = X.shape[1]
    names = _model_names(model) or [f"x{j}" for j in range(d)]
    header = list(names)
    columns = [X[:, j] for j in range(d)]
    if args.labels:
        header.append("component")
        columns.append(np.asarray(labels))
    emit(csv_text(header, columns), args.output)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    """gaussmix info: what a model file holds, in words and numbers."""
    model, doc, path = _read_model(args.model)
    print(describe_model_file(model, doc, path))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """gaussmix demo: automatic model selection on Old Faithful, with every output."""
    from gaussmix.datasets import faithful_mclust_bic, load_faithful

    X = np.asarray(load_faithful(), dtype=np.float64)
    ds = Dataset(X, ["eruptions", "waiting"], True, "the Old Faithful data")
    _check_output_folder(args)
    k_values = _parse_components(args.components)
    types = _parse_covariances(args.covariance)
    params = {"n_init": args.n_init, "random_state": args.seed}
    result = _run_selection(X, k_values, types, "bic", params, args)
    model = result.best_estimator_
    plots = _want_plots(args)
    with _output_folder(args) as staged:
        _fit_outputs(staged, model, ds, result, plots)
        written = staged.commit()
    best = result.best_params_
    summary = "\n".join(
        [
            "gaussmix demo: Old Faithful geyser (eruption length in minutes, waiting time to the",
            f"next eruption in minutes), {_grid_words(result)}.",
            "",
            "Model selection by BIC (best first):",
            selection_top(result),
            "",
            f"Best: {best['covariance_type']} covariance "
            f"({families.get(best['covariance_type']).mclust_name}), "
            f"{best['n_components']} components.",
            _wrap(compare_with_mclust(result, faithful_mclust_bic("all"))),
            "",
            model.summary(X, feature_names=ds.names, source=ds.source),
        ]
    )
    _finish(args, summary, written, staged)
    return EXIT_OK


def _grid_words(result: Any) -> str:
    """'36 candidate models: 1-9 components x 4 covariance types' for a selection's grid."""
    ks = sorted({row["n_components"] for row in result.table})
    types = list(dict.fromkeys(row["covariance_type"] for row in result.table))
    n_models = len(result.table)
    if len(ks) > 1 and ks == list(range(ks[0], ks[-1] + 1)):
        k_words = f"{ks[0]}-{ks[-1]} components"
    else:
        k_words = ", ".join(map(str, ks)) + f" component{'s' if ks != [1] else ''}"
    if len(types) > 1:
        t_words = f"{len(types)} covariance types"
    else:
        t_words = f"{types[0]} covariance"
    return f"{n_models} candidate model{'s' if n_models != 1 else ''}: {k_words} x {t_words}"


# --------------------------------------------------------------------------------------
# What the commands share: input, fitting, output files, model files


def _input(args: argparse.Namespace, dtype: str, prefer: Sequence[str] | None = None) -> Dataset:
    """The command's data; missing values are kept as NaN (in memory and on Dask)."""
    if getattr(args, "scheduler", None):
        return read_dask_data(args.data, args.columns, dtype, prefer)
    return read_data(args.data, args.columns, dtype, prefer, allow_missing=True)


def _refuse_missing_in_dask_selection(X: Any) -> None:
    """Model selection on Dask does not take missing values yet (one pass over the data);
    a single fit, predict, score and impute on Dask do."""
    import dask.array as da

    n_cells = int(da.isnan(X).sum().compute())
    if n_cells:
        raise UserError(
            f"{n_cells} missing value{'s' if n_cells != 1 else ''} (NaN): model selection "
            "with --scheduler (Dask) does not take missing values yet; run it without "
            "--scheduler (exact EM with missing values in memory), or fit one model on the "
            "cluster with -k N -c TYPE"
        )


def _plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _reported_warnings() -> Iterator[None]:
    """Show warnings raised inside the block as one line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = printable(" ".join(str(w.message).split()), limit=sys.maxsize)
        if text not in seen:
            seen.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)


def _parse_components(text: str) -> list[int]:
    """'1-9', '2,3,5' or '4' -> sorted list of component counts."""
    ranges: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            part = part.strip()
            lo, hi = (int(p) for p in part.split("-", 1)) if "-" in part else (int(part),) * 2
            if hi < lo:
                raise ValueError
            ranges.append((lo, hi))
    except ValueError:
        raise UserError(f"--components must look like 1-9, 2,3,5 or 4; got {text!r}") from None
    if min(lo for lo, _ in ranges) < 1:
        raise UserError(f"--components must be positive numbers; got {text!r}")
    # Checked on the ranges, before any list of them is built.
    _check_n_components(max(hi for _, hi in ranges), "--components")
    values = sorted({k for lo, hi in ranges for k in range(lo, hi + 1)})
    if len(values) > MAX_GRID_COMPONENTS:
        raise UserError(
            f"--components {text} asks for {len(values)} numbers of components; at most "
            f"{MAX_GRID_COMPONENTS} are tried in one run (each is a separate fit)"
        )
    return values


def _check_n_components(k: int, option: str) -> None:
    """A number of components above MAX_COMPONENTS is refused before anything is allocated."""
    if k > MAX_COMPONENTS:
        raise UserError(
            f"{option}: {k} components is more than this command fits (at most "
            f"{MAX_COMPONENTS:,}; the responsibilities alone take n_samples x n_components "
            "numbers); use fewer components"
        )


def _parse_covariances(text: str) -> tuple[str, ...] | None:
    """The covariance types of ``-c``/``--covariance``, by gaussmix's names, in order.

    None for auto: select_model's default set, whatever it is (so ``-c auto`` always means
    what ``select_model(X)`` compares).
    """
    if text == "auto":
        return None
    if text == "all":
        return ALL_COVARIANCE_TYPES
    if text == "sklearn":
        return SKLEARN_COVARIANCE_TYPES
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    if not types:
        raise UserError(f"--covariance needs at least one covariance type; got {text!r}")
    found = []
    for name in types:  # scikit-learn's names or mclust's ("EEE" = tied)
        try:
            found.append(families.get(name).name)  # reported by scikit-learn's name
        except ValueError:
            every = families.all_families()
            raise UserError(
                f"invalid choice: {name!r} (give one of "
                + ", ".join(repr(f.name) for f in every)
                + ", or mclust's names "
                + ", ".join(f"{a!r} (= {f.name!r})" for f in every for a in f.aliases)
                + "; a list of them such as VVV,EEE,VVE; or auto, all or sklearn)"
            ) from None
    return tuple(dict.fromkeys(found))


def _covariance_argument(text: str) -> str:
    """argparse type of -c/--covariance: checked when the arguments are parsed (before any
    data is read), kept as given."""
    try:
        _parse_covariances(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _fit_covariances(text: str) -> tuple[str | None, tuple[str, ...] | None]:
    """fit's ``-c``: (the one covariance type to fit, (it,)) for a single name (or a list
    naming one type), else (None, the types model selection chooses among; None = auto)."""
    types = _parse_covariances(text)
    if text not in COVARIANCE_PRESETS and types is not None and len(types) == 1:
        return types[0], types
    return None, types


def _refuse_stream_options(args: argparse.Namespace) -> None:
    """--checkpoint, --passes and --batch-size belong to online EM: without --stream (or
    --resume) they did nothing, silently."""
    given = [
        flag
        for flag, value in (
            ("--checkpoint", args.checkpoint or None),
            ("--passes", args.passes),
            ("--batch-size", args.batch_size),
        )
        if value is not None
    ]
    if given:
        raise UserError(
            f"{given[0]} applies to online EM (--stream or --resume), which this fit does not "
            f"use; add --stream to fit the file in chunks, or remove {given[0]}"
        )


def _refuse_empty_columns(ds: Dataset) -> None:
    """A column with no observed value cannot be fitted (no mean, no variance): named by
    its header name and 1-based number (the library's error counts features from 0)."""
    X = ds.X
    if is_lazy(X):
        return  # the library checks Dask data in its first pass (feature index from 0)
    with np.errstate(over="ignore", invalid="ignore"):
        if X.shape[0] == 0 or np.isfinite(np.sum(X, dtype=np.float64)):
            return
    observed = np.zeros(X.shape[1], dtype=bool)
    for start in range(0, X.shape[0], 1 << 16):
        observed |= ~np.isnan(X[start : start + (1 << 16)]).all(axis=0)
        if observed.all():
            return
    raise UserError(
        _empty_column_message(
            ds.source, ds.names, ds.has_header, int(np.argmin(observed)), int((~observed).sum())
        )
    )


def _empty_column_message(
    source: str,
    names: Sequence[str],
    has_header: bool,
    j: int,
    n_empty: int = 1,
    batch_rows: int | None = None,
) -> str:
    column = f"column {j + 1}"
    if has_header:
        column = f"column {printable(names[j], limit=60)!r} ({column})"
    if batch_rows is not None:  # online EM starts from its first batch
        return (
            f"{printable(source)}: {column} has no observed value in the first batch "
            f"(up to {batch_rows:,} rows), from which online EM starts; shuffle the rows (they "
            "should be in random order), give a larger --batch-size, or drop the column if "
            "it is empty throughout"
        )
    others = f" (and {n_empty - 1} more)" if n_empty > 1 else ""
    return (
        f"{printable(source)}: {column}{others} has no observed value (every row is missing "
        "there), so its mean and variance cannot be estimated; drop it, or choose the other "
        "columns with --columns"
    )


# The library's error for such a column (features counted from 0, no names).
_NO_OBSERVED_VALUE = re.compile(r"Feature (\d+) of X has no observed value")


@contextlib.contextmanager
def _columns_named_in_errors(
    source: str, names: Sequence[str], has_header: bool, batch_rows: int | None = None
) -> Iterator[None]:
    """The library's error for a feature with no observed value, said as the command line
    says columns (by header name and 1-based number): on Dask and with --stream (whose
    ``batch_rows`` start the fit), where the data are not checked before the fit."""
    try:
        yield
    except ValueError as exc:
        match = _NO_OBSERVED_VALUE.match(str(exc))
        if match is None or int(match.group(1)) >= len(names):
            raise
        j = int(match.group(1))
        raise UserError(
            _empty_column_message(source, names, has_header, j, batch_rows=batch_rows)
        ) from None


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {
        "n_init": args.n_init,
        "random_state": args.seed,
    }
    for name, attr in (
        ("max_iter", "max_iter"),
        ("tol", "tol"),
        ("reg_covar", "reg_covar"),
        ("init_params", "init"),
        ("prior", "prior"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            params[name] = value
    return params


def _check_components(k_values: Sequence[int], n_samples: int) -> None:
    if min(k_values) > n_samples:
        raise UserError(
            f"cannot fit {min(k_values)} components to {n_samples} samples; "
            "use fewer components or more data"
        )


def _run_selection(
    X: np.ndarray,
    k_values: Sequence[int],
    covariance_types: Sequence[str] | None,
    criterion: str,
    params: dict[str, Any],
    args: argparse.Namespace,
) -> Any:
    # In memory or on a Dask cluster (a lazy X): the same select_model.
    from gaussmix.selection import select_model

    k_values = [k for k in k_values if k <= X.shape[0]]
    # None (-c auto): select_model's own default set of covariance types.
    types = {} if covariance_types is None else {"covariance_types": tuple(covariance_types)}
    if getattr(args, "dtype", None) == "float32":
        raise UserError(
            "model selection fits in float64 whatever --dtype says; remove --dtype float32, "
            "or fit the chosen model again with -k N -c TYPE --dtype float32"
        )
    if "init_params" in params:
        raise UserError(
            "--init applies to a single fit (-k N -c TYPE); model selection makes its own "
            "starts, so remove --init"
        )
    if not isinstance(X, np.ndarray):  # a Dask array
        _refuse_missing_in_dask_selection(X)
    show = _progress.enabled(quiet=getattr(args, "quiet", False))
    # A ValueError (a bad argument, or every fit failed) is a user error in main.
    with _progress.grid_progress(show=show) as progress, _reported_warnings():
        return select_model(
            X,
            n_components=k_values,
            criterion=criterion,
            **types,
            progress=progress,
            n_jobs=getattr(args, "jobs", None),
            **params,
        )


_JOBS_SINGLE_FIT = (
    "--jobs applies to model selection (-k auto, or several covariance types with -c); a "
    "single fit runs in one process (its E-steps use every core from 4,096 rows): "
    "remove --jobs"
)


def _fit_one(X: np.ndarray, params: dict[str, Any], args: argparse.Namespace) -> Any:
    from gaussmix import GaussianMixture

    model = GaussianMixture(**params)
    show = _progress.enabled(quiet=getattr(args, "quiet", False))
    with _progress.fit_progress(model, n_samples=X.shape[0], show=show), _reported_warnings():
        model.fit(X)
    return model


def _assignments_writer(model: Any, X: Any) -> Callable[[Any], None]:
    """CSV of row, label, uncertainty (1 - largest probability) and every probability."""
    k = np.shape(model.means_)[0]

    def columns(labels: np.ndarray, proba: np.ndarray) -> list[np.ndarray]:
        proba = np.asarray(proba, dtype=np.float64)
        # 1 - max as the sum of the other probabilities: 1.0 - 0.9999999999999999 gave
        # 1.1e-16 (or 0) where the others sum to 1e-30 (cancellation).
        largest = np.arange(proba.shape[1]) == proba.argmax(axis=1)[:, None]
        return [labels, np.where(largest, 0.0, proba).sum(axis=1), *proba.T]

    header = ["row", "label", "uncertainty"] + [f"p{j}" for j in range(k)]
    if not is_lazy(X):  # computed and written block by block (bounded memory)
        return block_writer(
            X,
            header,
            lambda block: columns(_quiet(model.predict, block), _quiet(model.predict_proba, block)),
        )
    with no_feature_name_warnings():
        arrays = [model.predict(X), model.predict_proba(X)]
    return table_writer(X, header, arrays, columns)


def _quiet(method: Callable[[Any], Any], X: Any) -> Any:
    """``method(X)`` without the feature-name warning (the CLI checked the names itself)."""
    with no_feature_name_warnings():
        return method(X)


def _stage_model(out: OutputDir, model: Any, ds: Dataset) -> None:
    out.stage(
        "model.json",
        model_to_json(model, n_samples=ds.X.shape[0], feature_names=list(ds.names)),
    )


def _fit_outputs(
    out: OutputDir,
    model: Any,
    ds: Dataset,
    result: Any,
    plots: bool,
) -> None:
    """Stage model.json, assignments.csv and the plots for a fitted model."""
    names = ds.names
    _stage_model(out, model, ds)
    out.stage("assignments.csv", writer=_assignments_writer(model, ds.X))
    if result is not None:
        out.stage("selection.csv", _selection_csv(result))
    if not plots:
        return
    from gaussmix import plot
    from gaussmix._cli_dask import plot_rows

    with no_feature_name_warnings():
        shown = plot_rows(_plotted_rows(model, ds.X))
        figure = plot.plot_clusters(model, shown, feature_names=names)
        _stage_figure(out, "clusters.png", figure)
    _stage_figure(out, "loglik.png", plot.plot_loglik(model, n_samples=ds.X.shape[0]))
    if result is not None:
        _stage_figure(out, "bic.png", plot.plot_bic(result))


def _plotted_rows(model: Any, X: Any) -> Any:
    """The rows a scatter plot shows: the complete ones (all, if none is complete: imputed)."""
    if is_lazy(X):
        return X
    incomplete = np.isnan(X).any(axis=1)
    if not incomplete.any():
        return X
    if incomplete.all():
        with no_feature_name_warnings():
            return model.impute(X)
    return X[~incomplete]


def _stage_figure(out: OutputDir, name: str, figure: Any) -> None:
    """Stage a matplotlib figure as the PNG file ``name``."""
    from gaussmix.plot import DPI

    out.stage(name, save=lambda path: figure.savefig(path, format="png", dpi=DPI))


def _want_plots(args: argparse.Namespace) -> bool:
    if getattr(args, "no_plots", False):
        return False
    if not _plots_available():
        print(
            f"{PROG}: plots skipped: matplotlib is not installed ({PLOT_INSTALL_HINT})",
            file=sys.stderr,
        )
        return False
    return True


def _waiting(directory: str) -> None:
    print(
        f"{PROG}: another gaussmix run is writing to {printable(directory, limit=sys.maxsize)}; "
        "waiting for it to finish (Ctrl-C to stop)",
        file=sys.stderr,
    )


def _output_folder(args: argparse.Namespace) -> contextlib.AbstractContextManager[OutputDir]:
    """The run's output folder, published as one unit (see :class:`gaussmix.io.OutputDir`)."""
    return staged_outputs(
        args.output, outputs=OUTPUT_FILES, on_wait=_waiting, inputs=_input_files(args)
    )


def _input_files(args: argparse.Namespace) -> list[str]:
    """The files a run reads that its outputs must not replace (not --resume's model,
    which a resumed run may continue in place)."""
    data = getattr(args, "data", None)
    return [data] if isinstance(data, str) and data != "-" else []


def _check_output_folder(args: argparse.Namespace) -> None:
    """Before the work: the output folder can be written, holds no file of an output name
    that gaussmix did not write, and none of the inputs is among the outputs.

    Made under the folder's lock (a run publishing there is waited for), after completing
    a publication an interrupted run cut short; what that cleaned up or removed is listed
    with the run's own outputs (kept in ``args.output_check``).
    """
    out = OutputDir(args.output, OUTPUT_FILES, on_wait=_waiting, inputs=_input_files(args))
    out.check_writable()
    args.output_check = out


def _finish(
    args: argparse.Namespace, summary: str, written: list[str], out: OutputDir | None = None
) -> None:
    if args.quiet:
        return
    # Names from the data are escaped where the summary shows them; this catches the rest.
    print("\n".join(printable(line, limit=sys.maxsize) for line in summary.split("\n")))
    print()
    print("wrote:")
    for path in written:
        print(f"  {printable(path, limit=sys.maxsize)}")
    runs = [r for r in (getattr(args, "output_check", None), out) if r is not None]
    removed = [path for r in runs for path in r.removed]
    cleaned = [path for r in runs for path in r.cleaned]
    if removed:
        print("removed (written by an earlier run, not by this one):")
        for path in removed:
            print(f"  {printable(path, limit=sys.maxsize)}")
    if cleaned:
        print("cleaned up (left by an interrupted run):")
        for path in cleaned:
            print(f"  {printable(path, limit=sys.maxsize)}")


def _read_model(path: str) -> tuple[Any, dict[str, Any], str]:
    """The model, its decoded file and the file's path (``path`` or ``path/model.json``)."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.json")
        if not os.path.isfile(candidate):
            raise UserError(f"{path} is a directory without a model.json")
        path = candidate
    try:
        data = read_model_bytes(path)
    except FileNotFoundError:
        raise UserError(f"model file not found: {path}") from None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied") from None
    doc = _document_from_json(data, path)
    return model_from_dict(doc, path), doc, path


def _load(path: str) -> Any:
    return _read_model(path)[0]


def _model_names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _aligned(model: Any, ds: Dataset, explicit_columns: bool) -> Any:
    """Data columns in the model's feature order, checked by name (see model_columns)."""
    return model_columns(ds, _model_names(model), int(model.n_features_in_), explicit_columns)


def _model_dtype(model: Any) -> str:
    return "float32" if np.asarray(model.means_).dtype == np.float32 else "float64"


@contextlib.contextmanager
def _dask_session(args: argparse.Namespace) -> Iterator[Any]:
    """Connect to (or start) the Dask cluster of ``--scheduler`` for the command's duration."""
    spec = getattr(args, "scheduler", None)
    if not spec:
        yield None
        return
    if getattr(args, "stream", False) or getattr(args, "resume", None):
        raise UserError(  # before any cluster is started or connected to
            "--stream reads the file here, in chunks; remove --scheduler, or remove --stream "
            "to fit on the cluster"
        )
    check_dask_input(getattr(args, "data", None))
    try:
        from gaussmix import _dask
    except ImportError as exc:
        raise UserError(f'--scheduler needs dask: pip install "gaussmix[dask]" ({exc})') from None
    try:
        client = _dask.client_from_scheduler(spec)
    except ImportError as exc:
        raise UserError(str(exc)) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            _dask.close_client(client)


# --------------------------------------------------------------------------------------
# Argument parsing


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines; shows defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=80)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) like every user error."""

    commands: tuple[str, ...] = ()  # the subcommands, set by build_parser

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _common(quiet_help: str = "no progress display and no summary") -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parent.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    return parent


def _seed(text: str) -> int:
    """argparse type of --seed: a non-negative integer (what NumPy accepts as a seed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _jobs(text: str) -> int:
    """argparse type of --jobs: a positive integer, or -1 (one process per CPU)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or -1 (one per CPU), got {text!r}")
    return value


def _scheduler_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on a Dask cluster: a scheduler address (tcp://host:8786), or local:N to "
        "start N local worker processes; DATA must then be a .npy file, a folder of .npy "
        "files, or Parquet (needs gaussmix[dask])",
    )


def _model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (model.json) or a directory holding one")


def _data_options(parser: argparse.ArgumentParser) -> None:
    """The DATA argument and --columns."""
    parser.add_argument(
        "data",
        help="CSV/TSV file (header and delimiter detected; - for stdin), .npy or .parquet; "
        "empty, NA and nan cells are missing values; blank lines and lines starting with # "
        "are skipped (row numbers count the data rows read)",
    )
    parser.add_argument(
        "--columns",
        type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
        help="columns to use, by name or 1-based number: a,b,c",
    )


def _output_dir_option(
    parser: argparse.ArgumentParser, default: str = "gaussmix-output", metavar: str = "OUTDIR"
) -> None:
    parser.add_argument(
        "-o",
        "--output",
        default=default,
        metavar=metavar,
        help="output directory (created if needed)",
    )


def _output_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="CSV file (default stdout)"
    )


def _no_plots_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")


def _fit_options(parser: argparse.ArgumentParser) -> None:
    _data_options(parser)
    parser.add_argument(
        "--n-init",
        type=int,
        default=DEFAULT_N_INIT,
        help="EM runs from different starts per model; the best is kept",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="EM iterations per run (default: the library's, 100)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=None,
        help="convergence threshold on the change of the mean log-likelihood "
        "per sample (default 1e-3)",
    )
    parser.add_argument(
        "--reg-covar",
        type=float,
        default=None,
        help="added to covariance diagonals for stability (default 1e-6)",
    )
    parser.add_argument(
        "--prior",
        default=None,
        choices=["default"],
        help="MAP EM under mclust's default conjugate prior, priorControl() (Fraley & "
        "Raftery 2007); not VEE, EVE, VVE, EVV (-c auto and -c all then compare mclust's "
        "other 10 models, as Mclust with a prior)",
    )
    parser.add_argument(
        "--init",
        default=None,
        choices=["robust", "kmeans", "k-means++", "random", "random_from_data"],
        help="initialisation of a single fit (default robust: model selection's starts for "
        "this K and covariance type; kmeans is scikit-learn's default; --stream starts "
        "from kmeans on its first batch unless this says otherwise)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, help="random seed (results are reproducible)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="floating-point precision of the fit",
    )
    parser.add_argument(
        "--criterion",
        choices=["bic", "aic", "icl"],
        default="bic",
        help="model-selection criterion (lower is better)",
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="model selection in up to N processes (-1: one per CPU); worth it for mclust's "
        "14 models, and for scikit-learn's four from a few thousand rows (default: one "
        "process)",
    )
    _no_plots_option(parser)
    _scheduler_option(parser)
    _output_dir_option(parser)


def _stream_options(parser: argparse.ArgumentParser) -> None:
    """--stream, --passes, --batch-size, --checkpoint and --resume of gaussmix fit."""
    group = parser.add_argument_group(
        "online EM (files larger than memory)",
        "With --stream, DATA is read in chunks (CSV/TSV in 8 MB pieces, .npy memory-mapped, "
        "Parquet by record batches) and fitted by online EM (GaussianMixture.partial_fit), "
        "so memory stays bounded; only model.json is written. The rows should be in random "
        "order (shuffle a sorted file first).",
    )
    group.add_argument(
        "--stream", action="store_true", help="fit by online EM, reading DATA in chunks"
    )
    group.add_argument(
        "--passes",
        type=int,
        default=None,
        metavar="N",
        help=f"passes over DATA (with --stream; default {DEFAULT_PASSES})",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="ROWS",
        help=f"rows per online EM step (with --stream; default {DEFAULT_BATCH_SIZE})",
    )
    group.add_argument(
        "--checkpoint",
        action="store_true",
        help="also write OUTDIR/model.json (atomically) after every pass but the last "
        "(with --stream; an error without it)",
    )
    group.add_argument(
        "--resume",
        metavar="MODEL",
        default=None,
        help="continue the online EM of a saved model (model.json) on DATA; implies --stream",
    )


_MATCHING = (
    "Columns are matched to the model's feature names when the data has a header; a header "
    "without them is an error, unless --columns chooses the columns that stand for the "
    "model's features, in the model's order."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gaussmix`` command."""
    from gaussmix.io import _gaussmix_version

    parser = _Parser(
        prog=PROG,
        description=_wrap(
            "Gaussian mixture models fitted by EM: cluster a table, choose the number "
            "of components and the covariance type by BIC, predict, score and sample."
        ),
        epilog="Run 'gaussmix COMMAND --help' for each command's options. "
        "'gaussmix demo' shows everything on the Old Faithful data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_gaussmix_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func: Any, description: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[_common()],
            formatter_class=_Formatter,
            description=_wrap(description),
            **kwargs,
        )
        p.set_defaults(func=func)
        return p

    p = command(
        "fit",
        cmd_fit,
        "Fit a Gaussian mixture to DATA. Writes OUTDIR/model.json, "
        "OUTDIR/assignments.csv (row, label, uncertainty = 1 - max probability, one "
        "probability per component), OUTDIR/clusters.png, OUTDIR/loglik.png and, when it "
        "chooses (-k auto, or -c naming several types), OUTDIR/bic.png and "
        "OUTDIR/selection.csv; prints a summary.",
        help="fit a mixture to a data file and write the model, assignments and plots",
        epilog="examples:\n  gaussmix fit data.csv -k 3 -c tied -o out\n"
        "  gaussmix fit data.csv -k auto -c auto --components 1-6\n"
        "  gaussmix fit data.csv -k 3 -c VVV,EEE,VVE -o out   # the best of three at K = 3\n"
        "  gaussmix fit big.csv --stream -k 4 --passes 3 --checkpoint -o out\n"
        "  gaussmix fit --resume out/model.json more.csv -o out",
    )
    _fit_options(p)
    p.add_argument(
        "-k",
        "--n-components",
        default="auto",
        metavar="N|auto",
        help="number of components, or auto to choose by --criterion",
    )
    p.add_argument(
        "-c",
        "--covariance",
        default=None,
        type=_covariance_argument,
        metavar="TYPE|LIST",
        help="covariance type: any of mclust's 14 models ("
        + ", ".join(families.MCLUST_MODELS)
        + ") or scikit-learn's names (spherical = VII, diag = VVI, tied = EEE, full = VVV); "
        "default full. Or choose it by --criterion (at the one K of -k N, or with K under "
        "-k auto) among a list (VVV,EEE,VVE), auto (select_model's default set), all (the "
        "14) or sklearn (scikit-learn's four)",
    )
    p.add_argument(
        "--components",
        default="1-9",
        help="numbers of components tried with -k auto: 1-9, 2,3,5, ...",
    )
    _stream_options(p)

    p = command(
        "select",
        cmd_select,
        "Fit every combination of --components and --covariance, print the table "
        "sorted by the criterion, and write OUTDIR/model.json (the best model), "
        "OUTDIR/selection.csv and OUTDIR/bic.png.",
        help="compare numbers of components and covariance types (BIC table)",
    )
    _fit_options(p)
    p.add_argument("--components", default="1-9", help="numbers of components: 1-9, 2,3,5, ...")
    p.add_argument(
        "-c", "--covariance", default="auto", type=_covariance_argument, help=COVARIANCE_HELP
    )

    p = command(
        "predict",
        cmd_predict,
        "Write row,label (with --proba also uncertainty and p0..pK-1) as CSV. "
        f"{_MATCHING}",
        help="assign rows of a data file to components",
    )
    _model_argument(p)
    _data_options(p)
    p.add_argument(
        "--proba",
        action="store_true",
        help="also write the uncertainty and each component's probability",
    )
    _output_file_option(p)
    _scheduler_option(p)

    p = command(
        "score",
        cmd_score,
        "Write n_samples, total and mean log-likelihood, BIC and AIC of DATA under "
        "MODEL as CSV; with --per-sample, each row's log-density instead. "
        f"{_MATCHING}",
        help="log-likelihood of a data file under a model",
    )
    _model_argument(p)
    _data_options(p)
    p.add_argument("--per-sample", action="store_true", help="one log-density per row")
    _output_file_option(p)
    _scheduler_option(p)

    p = command(
        "impute",
        cmd_impute,
        "Write DATA with its missing values (empty, NA or nan cells; NaN in .npy; Parquet "
        "nulls) replaced by their expected value given the row's observed values under MODEL "
        "(the posterior-weighted conditional mean), as CSV with the model's columns; observed "
        f"values are written unchanged. {_MATCHING}",
        help="fill the missing values of a data file from a model",
        epilog="example:\n  gaussmix impute out/model.json data.csv -o filled.csv",
    )
    _model_argument(p)
    _data_options(p)
    _output_file_option(p)

    p = command(
        "sample",
        cmd_sample,
        "Write N samples drawn from MODEL as CSV (one column per feature; with "
        "--labels also the component each came from).",
        help="draw random samples from a model",
    )
    _model_argument(p)
    p.add_argument(
        "-n", "--n-samples", type=int, default=100, metavar="N", help="number of samples"
    )
    p.add_argument("--seed", type=_seed, default=None, help="random seed")
    p.add_argument("--labels", action="store_true", help="add a component column")
    _output_file_option(p)

    p = command(
        "info",
        cmd_info,
        "Say what MODEL is: covariance type, components, weights, means, spreads, "
        "correlations and how it was trained.",
        help="describe a model file",
    )
    _model_argument(p)

    p = command(
        "demo",
        cmd_demo,
        "Choose the number of components (1-9) and the covariance type by BIC on "
        "the Old Faithful geyser data, then write model.json, assignments.csv, selection.csv, "
        "clusters.png, loglik.png and bic.png to DIR and print a summary, with the model "
        "mclust picks over the same grid (from its published BIC table).",
        help="automatic model selection on the bundled Old Faithful data",
    )
    _output_dir_option(p, default="demo-output", metavar="DIR")
    p.add_argument("--components", default="1-9", help="numbers of components: 1-9, 2,3,5, ...")
    p.add_argument(
        "-c", "--covariance", default="auto", type=_covariance_argument, help=COVARIANCE_HELP
    )
    p.add_argument("--n-init", type=int, default=DEFAULT_N_INIT, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    _no_plots_option(p)
    parser.commands = tuple(sub.choices)
    return parser


def _one_line(exc: BaseException) -> str:
    # Escaped: a message may quote a column name, a file name or a file's contents.
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return printable(f"{exc.strerror.lower()}{where}", limit=sys.maxsize)
    text = printable(" ".join(str(exc).split()), limit=sys.maxsize)
    return text or type(exc).__name__


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a run being stopped cleans up the same way."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gaussmix`` command; returns the exit code (0 ok, 1 internal, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        commands = ", ".join(parser.commands)
        print(f"{PROG}: error: give a command: {commands} (see '{PROG} --help')", file=sys.stderr)
        return EXIT_USER
    debug = getattr(args, "debug", False)
    try:
        with _dask_session(args), _terminate_as_interrupt():
            return int(args.func(args) or EXIT_OK)
    except _Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 128 + int(signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `gaussmix predict ... | head`): not an error.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (UserError, ModelFileError, ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER
    except Exception as exc:
        if debug:
            traceback.print_exc()
        if type(exc).__name__ == "DaskFitError":  # the cluster failed, not gaussmix
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_INTERNAL
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
