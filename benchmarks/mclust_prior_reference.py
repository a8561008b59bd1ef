"""Regenerate tests/data/mclust_prior_faithful.json: mclust's MAP fits of Old Faithful.

Runs R's mclust (a black box through ``Rscript``; needs R with the mclust and jsonlite
packages) on ``datasets::faithful`` with mclust's default prior, ``priorControl()``, for
its 10 models with a prior update (EII, VII, EEI, VEI, EVI, VVI, EEE, EEV, VEV, VVV) and
G = 2, 3, 4, and stores:

* ``fits``: ``Mclust(faithful, G, modelNames, prior = priorControl())``'s log-likelihood,
  BIC and parameters (tests start gaussmix's MAP EM there and compare log-likelihoods);
* ``msteps``: ``mstep(modelName, faithful, z, prior = priorControl())``'s parameters from
  fixed responsibilities ``z`` (stored too, drawn here from a Dirichlet with seed 0): one
  MAP M-step, compared parameter by parameter;
* ``mes``: ``me()`` (MAP EM) from the same ``z`` run to a tight tolerance (1e-11): the
  fixed point gaussmix's MAP EM from that ``z`` must reach (log-likelihoods compared).

The tests (tests/test_prior.py) read the file and never need R. With ``--compare`` the
script also fits gaussmix from mclust's solutions and prints the log-likelihood
differences (the figures of the report).

Usage::

    python benchmarks/mclust_prior_reference.py [--compare]   # run R, write the file
    python benchmarks/mclust_prior_reference.py --from-file   # compare with the stored file
                                                             # (no R; implies --compare)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
GS = (2, 3, 4)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "mclust_prior_faithful.json")

R_PROGRAM = r"""
suppressMessages({library(mclust); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(faithful)
models <- strsplit(args[2], ",")[[1]]
Gs <- as.integer(strsplit(args[3], ",")[[1]])
params <- function(p) list(pro = p$pro, mean = t(p$mean),
                           sigma = aperm(p$variance$sigma, c(3, 1, 2)))
fits <- list(); msteps <- list(); mes <- list()
for (G in Gs) {
  z <- as.matrix(read.csv(sprintf("%s/z%d.csv", args[1], G), header = FALSE))
  for (m in models) {
    key <- sprintf("%s-%d", m, G)
    f <- Mclust(X, G = G, modelNames = m, prior = priorControl(), verbose = FALSE)
    fits[[key]] <- c(list(loglik = f$loglik, bic = f$bic, df = f$df), params(f$parameters))
    s <- mstep(data = X, modelName = m, z = z, prior = priorControl())
    msteps[[key]] <- params(s$parameters)
    e <- me(data = X, modelName = m, z = z, prior = priorControl(),
            control = emControl(tol = c(1e-11, 1e-12), itmax = c(100000, 100000)))
    mes[[key]] <- c(list(loglik = e$loglik, n_iter = attr(e, "info")[["iterations"]]),
                    params(e$parameters))
  }
}
cat(toJSON(list(mclust = as.character(packageVersion("mclust")), fits = fits,
                msteps = msteps, mes = mes), digits = NA, auto_unbox = TRUE))
"""


def run_mclust():
    rng = np.random.default_rng(0)
    z = {G: rng.dirichlet(np.full(G, 0.5), size=272) for G in GS}
    with tempfile.TemporaryDirectory() as tmp:
        for G, zg in z.items():
            np.savetxt(os.path.join(tmp, f"z{G}.csv"), zg, delimiter=",", fmt="%.17g")
        script = os.path.join(tmp, "ref.R")
        with open(script, "w") as fh:
            fh.write(R_PROGRAM)
        out = subprocess.run(
            ["Rscript", script, tmp, ",".join(MODELS), ",".join(map(str, GS))],
            check=True, capture_output=True, text=True,
        ).stdout
    doc = json.loads(out)
    doc["z"] = {str(G): zg.tolist() for G, zg in z.items()}
    doc["source"] = (
        "benchmarks/mclust_prior_reference.py: R mclust Mclust()/mstep() on "
        "datasets::faithful with prior = priorControl()"
    )
    return doc


def fit_from_z(X, model, z, **kwargs):
    """gaussmix's MAP EM from responsibilities ``z`` (its first step the M-step of z)."""
    from gaussmix import GaussianMixture, families
    from gaussmix._prior import data_moments, resolve_prior
    from gaussmix.stats import m_step, statistics_from_responsibilities

    family = families.get(model)
    K = z.shape[1]
    prior = resolve_prior("default", family, K, *data_moments(X))
    stats = statistics_from_responsibilities(X, z, family.name, shift=X.mean(axis=0))
    start = m_step(stats, reg_covar=0.0, prior=prior)
    options = dict(reg_covar=0.0, tol=1e-11, max_iter=100000)
    options.update(kwargs)
    return GaussianMixture(
        K, covariance_type=model, prior="default", weights_init=start.weights,
        means_init=start.means,
        precisions_init=family.precisions_from_cholesky(start.precisions_cholesky),
        **options,
    ).fit(X)


def compare(doc):
    import warnings

    from gaussmix import GaussianMixture
    from gaussmix.datasets import load_faithful

    X = load_faithful()
    n = X.shape[0]
    print(f"mclust {doc['mclust']}, faithful, prior = priorControl()")
    print("MAP EM from the same z as mclust's me() (tolerance 1e-11), and the best fit of each")
    print("(mclust: Mclust() from its hierarchical start; gaussmix: init_params='robust')")
    print(f"{'model':5} {'G':>2} {'me() loglik':>14} {'gaussmix':>14} {'diff':>9}   "
          f"{'Mclust() BIC':>12} {'robust BIC':>12}")
    worst = 0.0
    for key, ref in doc["mes"].items():
        model, G = key.split("-")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = GaussianMixture(
                int(G), covariance_type=model, prior="default", reg_covar=0.0,
                init_params="robust", tol=1e-8, max_iter=1000, random_state=0,
            ).fit(X)
        bic = f"{doc['fits'][key]['bic']:>12.3f} {-best.bic(X):>12.3f}"
        if ref["loglik"] is None:  # me() stopped with an error code
            print(f"{model:5} {G:>2} {'(failed)':>14} {'':>14} {'':>9}   {bic}")
            continue
        z = np.asarray(doc["z"][G])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = fit_from_z(X, model, z)
        ll = gm.score(X) * n
        diff = ll - ref["loglik"]
        worst = max(worst, abs(diff))
        print(f"{model:5} {G:>2} {ref['loglik']:>14.6f} {ll:>14.6f} {diff:>9.1e}   {bic}")
    print(f"largest |difference| of log-likelihoods from the same z: {worst:.2e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true",
                        help="also fit gaussmix from mclust's solutions and print both")
    parser.add_argument("--from-file", action="store_true",
                        help="do not run R: compare against the stored file")
    args = parser.parse_args(argv)
    if args.from_file:
        with open(OUT) as fh:
            doc = json.load(fh)
    else:
        doc = run_mclust()
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as fh:
            json.dump(doc, fh)
        print(f"wrote {os.path.relpath(OUT)}", file=sys.stderr)
    if args.compare or args.from_file:
        compare(doc)


if __name__ == "__main__":
    main()
