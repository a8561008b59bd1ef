"""Regenerate tests/data/mclust_prior_select_faithful.json: mclust's BIC table with a prior.

Runs R's mclust (a black box through ``Rscript``; needs R with mclust and jsonlite) on
``datasets::faithful``: ``mclustBIC(faithful, G = 1:9, prior = priorControl())``, the table
``Mclust(faithful, prior = priorControl())`` selects from (mclust's sign: higher is
better; its models VEE, EVE, VVE and EVV have no value, as they have no prior update).
The tests (tests/test_prior_select.py) read the file and never need R.

With ``--compare`` it also runs ``select_model(faithful, prior="default")`` and prints,
per model and G, gaussmix's BIC (mclust's sign) minus mclust's, and the worst difference
(rows marked degenerate are never selected by gaussmix; mclust's fits there have
components carrying less than one point too).

Usage::

    python benchmarks/mclust_prior_select_reference.py [--compare]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "mclust_prior_select_faithful.json")

R_PROGRAM = r"""
suppressMessages({library(mclust); library(jsonlite)})
b <- mclustBIC(faithful, G = 1:9, prior = priorControl())
m <- Mclust(faithful, G = 1:9, prior = priorControl(), verbose = FALSE)
bic <- lapply(colnames(b), function(model) as.numeric(b[, model]))
names(bic) <- colnames(b)
cat(toJSON(list(mclust = as.character(packageVersion("mclust")), G = 1:9, bic = bic,
                best = list(model = m$modelName, G = m$G, bic = m$bic)),
           digits = NA, auto_unbox = TRUE, na = "null"))
"""


def run_mclust():
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "ref.R")
        with open(script, "w") as fh:
            fh.write(R_PROGRAM)
        out = subprocess.run(["Rscript", script], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def compare(ref):
    import numpy as np

    from gaussmix import families
    from gaussmix.datasets import load_faithful
    from gaussmix.selection import select_model

    res = select_model(np.asarray(load_faithful(), dtype=np.float64), prior="default",
                       random_state=0)
    ours = {(families.get(r["covariance_type"]).mclust_name, r["n_components"]): r
            for r in res.table}
    worst = worst_2 = None
    print("model  G   gaussmix BIC   mclust BIC   difference (> 0: gaussmix better)")
    for model, values in ref["bic"].items():
        for G, theirs in zip(ref["G"], values, strict=True):
            if theirs is None:
                continue
            row = ours[(model, G)]
            if row["bic"] is None:
                print(f"{model}  {G}  {'-':>12}  {theirs:12.3f}   ({row['error']})")
                continue
            diff = -row["bic"] - theirs
            flag = "  degenerate" if row["degenerate"] is not None else ""
            print(f"{model}  {G}  {-row['bic']:12.3f}  {theirs:12.3f}   {diff:+.4f}{flag}")
            if worst is None or diff < worst[0]:
                worst = (diff, model, G)
            if G > 1 and (worst_2 is None or diff < worst_2[0]):
                worst_2 = (diff, model, G)
    print(f"G >= 2: worst difference {worst_2[0]:+.4f} ({worst_2[1]}, G={worst_2[2]})")
    print(f"worst difference: {worst[0]:+.4f} ({worst[1]}, G={worst[2]}); selected "
          f"{res.best_params_} (mclust: {ref['best']['model']}, G={ref['best']['G']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    ref = run_mclust()
    with open(OUT, "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT)} (mclust {ref['mclust']})")
    if args.compare:
        compare(ref)


if __name__ == "__main__":
    main()
