# mclust's 14-model BIC table on Old Faithful, G = 1..9 (R's mclust as a black box).
#
#   Rscript benchmarks/mclust_faithful_table.R > faithful_mclust.csv
#
# Prints one CSV row per model and number of components: model, G, the BIC mclust prints
# (its sign: 2 log L - p log n, higher is better; NA where mclust's fit failed), its
# number of free parameters (nMclustParams) and the log-likelihood (BIC + p log n) / 2.
# gaussmix stores this output in src/gaussmix/datasets/data/faithful_mclust_bic.csv.
suppressMessages(library(mclust))
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
            "VEV", "EVV", "VVV")
b <- mclustBIC(faithful, G = 1:9, modelNames = models)
n <- nrow(faithful)
cat(sprintf("# mclust %s, R %s: mclustBIC(faithful, G = 1:9) with its default settings\n",
            as.character(packageVersion("mclust")), getRversion()))
cat("model,G,bic,n_parameters,loglik\n")
for (m in models) for (g in 1:9) {
  p <- nMclustParams(m, d = ncol(faithful), G = g)
  v <- b[g, m]
  if (is.na(v)) {
    cat(sprintf("%s,%d,NA,%d,NA\n", m, g, p))
  } else {
    cat(sprintf("%s,%d,%.10f,%d,%.10f\n", m, g, v, p, (v + p * log(n)) / 2))
  }
}
