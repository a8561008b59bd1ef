"""Online (stepwise) EM: GaussianMixture.partial_fit, its running statistics and model files."""

import itertools
import json
import re
import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture, _online, _readers, cli, load
from gaussmix.io import model_from_json, model_to_json
from gaussmix.stats import block_statistics, m_step

FAMILIES = ["full", "tied", "diag", "spherical"]


def _mixture(n, seed=0, n_features=5, n_components=4, spread=6.0):
    """Rows of K well-separated Gaussians with random covariances, in random order."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n)
    X = np.empty((n, n_features))
    for k in range(n_components):
        A = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        chol = np.linalg.cholesky(A @ A.T + 0.3 * np.eye(n_features))
        rows = labels == k
        X[rows] = means[k] + rng.normal(size=(rows.sum(), n_features)) @ chol.T
    return X


def _stream(model, X, batch, passes=1):
    for _ in range(passes):
        for start in range(0, X.shape[0], batch):
            model.partial_fit(X[start : start + batch])
    return model


def _params(model):
    return (model.weights_, model.means_, model.covariances_, model.precisions_cholesky_)


# --------------------------------------------------------------------------------------
# The step and the statistics


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_one_batch_of_all_rows_with_rho_one_is_one_em_iteration(covariance_type):
    X = _mixture(3000, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 2-iteration fit does not converge
        start = GaussianMixture(4, covariance_type=covariance_type, max_iter=2, random_state=0)
        start.fit(X)
    inits = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    online = GaussianMixture(4, covariance_type=covariance_type, max_iter=1, **inits)
    online.partial_fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(4, covariance_type=covariance_type, max_iter=1, **inits).fit(X)
    assert online.n_batch_iter_ == 1
    for a, b in zip(_params(online), _params(batch), strict=True):
        # Equal up to the rounding of dividing the statistics by N (per-sample averages).
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert online.lower_bound_ == pytest.approx(batch.lower_bound_, rel=1e-12)


def test_blend_is_the_convex_combination_of_per_sample_statistics_about_any_shift():
    X = _mixture(2000, seed=2)
    params = GaussianMixture(4, random_state=0).fit(X)._get_parameters()
    a = block_statistics(X[:800], params)
    b = block_statistics(X[800:], params)
    whole = block_statistics(X, params)
    # With rho = 1200 / 2000 the blend of the two halves is the average over all rows.
    blended = _online.blend(_online.normalised(a), b, rho=1200 / 2000)
    moved = blended.moved_to(whole.shift)
    np.testing.assert_allclose(moved.nk, whole.nk / 2000, rtol=1e-12)
    np.testing.assert_allclose(moved.s1, whole.s1 / 2000, atol=1e-12)
    np.testing.assert_allclose(moved.s2, whole.s2 / 2000, rtol=1e-10, atol=1e-12)
    # Running statistics about another shift are moved before blending.
    shifted = _online.normalised(a).moved_to(whole.shift + 3.0)
    again = _online.blend(shifted, b, rho=1200 / 2000)
    np.testing.assert_allclose(again.s2, blended.s2, rtol=1e-9, atol=1e-10)
    assert again.parameters_id is None  # belongs to no single set of parameters


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_statistics_of_parameters_are_a_fixed_point_of_the_m_step(covariance_type):
    X = _mixture(2000, seed=3)
    gm = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    params = gm._get_parameters()
    back = m_step(_online.statistics_of_parameters(params, gm.reg_covar), reg_covar=gm.reg_covar)
    np.testing.assert_allclose(back.weights, params.weights, rtol=1e-12)
    np.testing.assert_allclose(back.means, params.means, rtol=1e-12)
    np.testing.assert_allclose(back.covariances, params.covariances, rtol=1e-10)


def test_step_size_schedule():
    assert _online.step_size(1, 0.0, 1.0) == 1.0
    assert _online.step_size(4, 0.0, 1.0) == 0.25
    assert _online.step_size(2, 10.0, 0.7) == pytest.approx(12.0**-0.7)


# --------------------------------------------------------------------------------------
# Quality


def test_one_pass_reaches_batch_em_within_the_quality_target_at_small_scale():
    # benchmarks/bench_online.py measures the target (400,000 rows, batches of
    # 5,000); here 100,000 rows in batches of 1,000: the same number of batches.
    X = _mixture(100_000, seed=4)
    batch = GaussianMixture(4, tol=1e-8, max_iter=500, random_state=0).fit(X)
    online = _stream(GaussianMixture(4, random_state=0), X, 1000)
    gap = batch.score(X) - online.score(X)
    assert gap < 0.002
    three = _stream(GaussianMixture(4, random_state=0), X, 1000, passes=3)
    assert batch.score(X) - three.score(X) < 0.0005


def test_passes_improve_monotonically_on_clearly_structured_data():
    X = _mixture(30_000, seed=5, spread=8.0)
    model = GaussianMixture(4, random_state=0)
    scores = [_stream(model, X, 500).score(X) for _ in range(4)]
    assert all(b >= a for a, b in itertools.pairwise(scores)), scores
    assert scores[-1] > scores[0]


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_every_family_streams(covariance_type):
    X = _mixture(20_000, seed=6)
    batch = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    online = _stream(GaussianMixture(4, covariance_type=covariance_type, random_state=0), X, 500)
    assert online.covariances_.shape == batch.covariances_.shape
    assert batch.score(X) - online.score(X) < 0.01


def test_partial_fit_after_fit_continues_from_the_fitted_model():
    X = _mixture(20_000, seed=7)
    gm = GaussianMixture(4, random_state=0, learning_offset=100.0).fit(X)
    before = gm.score(X)
    means = gm.means_.copy()
    assert gm.partial_fit(X[:2000]) is gm
    assert gm.n_batch_iter_ == 2  # the fit counts as the first batch
    # One step of weight rho = 102 ** -0.7 = 0.04 on rows the model fits: it barely moves.
    assert abs(gm.score(X) - before) < 1e-3
    np.testing.assert_allclose(gm.means_, means, atol=0.05)
    # A new fit drops the running statistics.
    gm.fit(X)
    assert not hasattr(gm, "running_statistics_")


def test_float32_batches_stay_float32():
    X = _mixture(5000, seed=8).astype(np.float32)
    gm = _stream(GaussianMixture(4, random_state=0), X, 1000)
    assert gm.means_.dtype == np.float32
    gm.partial_fit(X[:500].astype(np.float64))  # cast to the model's dtype
    assert gm.means_.dtype == np.float32


def test_sample_weight_integer_weights_are_repeated_rows():
    X = _mixture(3000, seed=9)
    w = np.random.default_rng(0).integers(1, 3, size=3000)
    inits = GaussianMixture(4, random_state=0).fit(X)
    kw = dict(
        weights_init=inits.weights_, means_init=inits.means_, precisions_init=inits.precisions_
    )
    a = GaussianMixture(4, **kw).partial_fit(X, sample_weight=w)
    b = GaussianMixture(4, **kw).partial_fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)


def test_dask_array_is_taken_chunk_by_chunk():
    da = pytest.importorskip("dask.array")
    X = _mixture(6000, seed=10)
    lazy = da.from_array(X, chunks=(1000, 5))
    a = GaussianMixture(4, random_state=0).partial_fit(lazy)
    b = _stream(GaussianMixture(4, random_state=0), X, 1000)
    assert a.n_batch_iter_ == 6
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------
# Model files


@pytest.mark.parametrize("covariance_type", FAMILIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_save_and_load_mid_stream_continues_exactly(tmp_path, covariance_type, dtype):
    X = _mixture(8000, seed=11).astype(dtype)
    batches = [X[i : i + 1000] for i in range(0, 8000, 1000)]
    straight = GaussianMixture(4, covariance_type=covariance_type, random_state=0)
    for b in batches:
        straight.partial_fit(b)
    first = GaussianMixture(4, covariance_type=covariance_type, random_state=0)
    for b in batches[:3]:
        first.partial_fit(b)
    path = tmp_path / "model.json"
    first.save(path)
    resumed = load(path)
    assert resumed.n_batch_iter_ == 3
    for b in batches[3:]:
        resumed.partial_fit(b)
    for a, b in zip(_params(resumed), _params(straight), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(resumed.running_statistics_.s2, straight.running_statistics_.s2)


def test_model_files_are_version_2_and_version_1_files_still_load():
    X = _mixture(4000, seed=12)
    gm = GaussianMixture(4, random_state=0).fit(X)
    doc = json.loads(model_to_json(gm))
    assert doc["version"] == 2
    assert doc["online"] is None  # fitted by fit: no running statistics
    # A version-1 file (as gaussmix 0.1 wrote it: no "online" field) loads, and
    # partial_fit continues from its fitted parameters.
    del doc["online"]
    doc["version"] = 1
    old = model_from_json(json.dumps(doc))
    np.testing.assert_array_equal(old.means_, gm.means_)
    assert not hasattr(old, "running_statistics_")
    old.partial_fit(X[:1000])
    assert old.n_batch_iter_ == 2
    streamed = json.loads(model_to_json(old))
    assert streamed["online"]["n_batch_iter"] == 2
    assert len(streamed["online"]["statistics"]["nk"]) == 4


def test_damaged_running_statistics_are_reported():
    X = _mixture(4000, seed=13)
    gm = _stream(GaussianMixture(4, random_state=0), X, 1000)
    doc = json.loads(model_to_json(gm))
    doc["online"]["statistics"]["s2"] = [[1.0]]
    with pytest.raises(ValueError, match=r"online\.statistics\.s2"):
        model_from_json(json.dumps(doc))
    doc = json.loads(model_to_json(gm))
    doc["online"]["n_batch_iter"] = -1
    with pytest.raises(ValueError, match=r"online\.n_batch_iter"):
        model_from_json(json.dumps(doc))


# --------------------------------------------------------------------------------------
# Bad input


def test_partial_fit_returns_self_and_sets_n_features_in_from_the_first_batch():
    X = _mixture(2000, seed=14)
    gm = GaussianMixture(4, random_state=0)
    assert gm.partial_fit(X[:1000]) is gm
    assert gm.n_features_in_ == 5


def test_another_number_of_features_is_an_error():
    X = _mixture(2000, seed=15)
    gm = GaussianMixture(4, random_state=0).partial_fit(X[:1000])
    with pytest.raises(ValueError, match="X has 4 features, but GaussianMixture is expecting 5"):
        gm.partial_fit(X[1000:, :4])


def test_a_first_batch_with_fewer_rows_than_components_is_an_error():
    X = _mixture(10, seed=16)
    with pytest.raises(ValueError, match="first batch of partial_fit has 3 rows, fewer than"):
        GaussianMixture(4).partial_fit(X[:3])
    # Later batches may be small.
    gm = GaussianMixture(4, random_state=0).partial_fit(X)
    gm.partial_fit(X[:1])


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"learning_decay": 0.5}, ValueError, r"learning_decay must be in \(0.5, 1\]"),
        ({"learning_decay": 1.5}, ValueError, r"learning_decay must be in \(0.5, 1\]"),
        ({"learning_offset": -1.0}, ValueError, "learning_offset must be >= 0"),
        ({"learning_offset": "ten"}, TypeError, "learning_offset must be a real number"),
        ({"learning_decay": float("nan")}, ValueError, "learning_decay must be finite"),
        ({"n_components": 0}, ValueError, "n_components"),
    ],
)
def test_bad_parameters_are_errors(params, error, match):
    X = _mixture(100, seed=17)
    with pytest.raises(error, match=match):
        GaussianMixture(**{"n_components": 2, **params}).partial_fit(X)


def test_bad_batches_are_errors():
    X = _mixture(2000, seed=18)
    gm = GaussianMixture(4, random_state=0).partial_fit(X[:1000])
    bad = X[1000:1100].copy()
    bad[5, 2] = np.inf  # NaN is a missing value (tests/test_missing_online.py)
    with pytest.raises(ValueError, match="infinite"):
        gm.partial_fit(bad)
    with pytest.raises(ValueError, match=r"2D array|2-D"):
        gm.partial_fit(X[0])
    with pytest.raises(ValueError, match="sums to zero"):
        gm.partial_fit(X[:10], sample_weight=np.zeros(10))
    with pytest.raises(ValueError, match="sample_weight has 3 values"):
        gm.partial_fit(X[:10], sample_weight=np.ones(3))
    gm.set_params(n_components=3)
    with pytest.raises(ValueError, match="partial_fit continues the fitted model"):
        gm.partial_fit(X[:10])
    gm.set_params(n_components=4, covariance_type="diag")
    with pytest.raises(ValueError, match="covariance_type 'full'"):
        gm.partial_fit(X[:10])


def test_a_failed_step_leaves_the_model_unchanged():
    X = _mixture(2000, seed=19)
    gm = GaussianMixture(4, random_state=0).partial_fit(X[:1000])
    means = gm.means_.copy()
    with pytest.raises(ValueError):
        gm.partial_fit(np.full((10, 5), np.inf))
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.n_batch_iter_ == 1


def test_feature_names_are_kept_and_checked():
    pd = pytest.importorskip("pandas")
    X = _mixture(2000, seed=20)
    cols = [f"f{j}" for j in range(5)]
    gm = GaussianMixture(4, random_state=0).partial_fit(pd.DataFrame(X[:1000], columns=cols))
    assert list(gm.feature_names_in_) == cols
    with pytest.raises(ValueError, match="feature names should match"):
        gm.partial_fit(pd.DataFrame(X[1000:], columns=cols[::-1]))


def test_parameters_are_in_get_params():
    gm = GaussianMixture(learning_offset=5.0, learning_decay=0.9)
    assert gm.get_params()["learning_offset"] == 5.0
    assert "learning_decay=0.9" in repr(gm)


# --------------------------------------------------------------------------------------
# Reading in chunks and the command line (gaussmix fit --stream / --resume)


def _write_csv(path, X, names=None, fmt="%.17g", delimiter=","):
    header = "" if names is None else delimiter.join(names)
    np.savetxt(path, X, delimiter=delimiter, header=header, comments="", fmt=fmt)


def _all_chunks(data):
    return np.concatenate(list(data.chunks()))


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of 64 bytes of text or 7 rows of arrays: every carry and seam is exercised."""
    monkeypatch.setattr(_readers, "TEXT_CHUNK_BYTES", 64)
    monkeypatch.setattr(_readers, "ARRAY_CHUNK_ROWS", 7)


def test_chunked_reading_equals_reading_the_whole_file(tmp_path, tiny_chunks):
    X = _mixture(200, seed=21)[:, :3]
    csv_path = tmp_path / "d.csv"
    _write_csv(csv_path, X, ["a", "b", "c"])
    text = csv_path.read_text().splitlines()
    text.insert(5, "# a comment")
    text.insert(9, "")
    csv_path.write_text("\n".join(text) + "\n")
    tsv_path = tmp_path / "d.tsv"
    _write_csv(tsv_path, X, None, delimiter="\t")
    npy_path = tmp_path / "d.npy"
    np.save(npy_path, X)
    paths = [csv_path, tsv_path, npy_path]
    if _has("pyarrow"):
        import pandas as pd

        pq_path = tmp_path / "d.parquet"
        pd.DataFrame(X, columns=["a", "b", "c"]).to_parquet(pq_path)
        paths.append(pq_path)
    for path in paths:
        whole = _readers.read_data(str(path), ["3", "1"] if path != csv_path else ["c", "a"])
        data = _readers.open_chunked(str(path), ["3", "1"] if path != csv_path else ["c", "a"])
        assert data.names == whole.names
        np.testing.assert_array_equal(_all_chunks(data), whole.X)
        np.testing.assert_array_equal(_all_chunks(data), whole.X)  # a second pass


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_batches_have_the_requested_size_and_a_longer_last_one(tmp_path, tiny_chunks):
    X = np.arange(46.0).reshape(23, 2)
    np.save(tmp_path / "d.npy", X)
    data = _readers.open_chunked(str(tmp_path / "d.npy"))
    batches = list(data.batches(5))
    assert [len(b) for b in batches] == [5, 5, 5, 8]
    np.testing.assert_array_equal(np.concatenate(batches), X)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1.0,oops,3.0", r"non-numeric value 'oops' at line 42 \(data row 41\), column 'b'"),
        # missing cells are used (online EM with NaN); a row of nothing but holes is not
        ("NA,,nan", r"1 row with no observed value, the first at line 42"),
        ("1.0,2.0", r"line 42 has 2 fields but the header has 3"),
        ("1.0,inf,3.0", r"infinite value at line 42, column 'b'"),
    ],
)
def test_chunked_errors_name_the_line(tmp_path, tiny_chunks, line, match):
    X = _mixture(100, seed=22)[:, :3]
    path = tmp_path / "d.csv"
    _write_csv(path, X, ["a", "b", "c"], fmt="%.3f")
    lines = path.read_text().splitlines()
    lines[41] = line  # line 42 of the file, data row 41
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(_readers.DataError, match=match):
        _all_chunks(_readers.open_chunked(str(path)))


def test_cli_stream_passes_checkpoint_and_resume_continue_exactly(tmp_path, capsys):
    X = _mixture(24_000, seed=23)
    names = [f"f{j}" for j in range(5)]
    first, more = tmp_path / "first.csv", tmp_path / "more.csv"
    _write_csv(first, X[:16_000], names)
    _write_csv(more, X[16_000:], names)
    out = tmp_path / "out"
    code = cli.main(["fit", str(first), "--stream", "-k", "4", "--passes", "2", "--checkpoint",
                     "--batch-size", "2000", "-o", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "pass 1/2: 16,000 rows in 8 batches" in captured.err
    assert "pass 2/2" in captured.err
    doc = json.loads((out / "model.json").read_text())
    assert doc["version"] == 2 and doc["online"]["n_batch_iter"] == 16
    assert doc["feature_names"] == names
    assert "Trained by online EM (partial_fit) over 16 batches" in captured.out
    code = cli.main(["fit", "--resume", str(out / "model.json"), str(more), "--batch-size",
                     "2000", "-o", str(tmp_path / "resumed"), "-q"])
    assert code == 0
    # The library, batch after batch, from the CLI's settings (n_init=3, seed 0).
    gm = GaussianMixture(4, n_init=3, random_state=0)
    for _ in range(2):
        for start in range(0, 16_000, 2000):
            gm.partial_fit(X[start : start + 2000])
    for start in range(16_000, 24_000, 2000):
        gm.partial_fit(X[start : start + 2000])
    resumed = load(tmp_path / "resumed" / "model.json")
    assert resumed.n_batch_iter_ == 20
    for a, b in zip(_params(resumed), _params(gm), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["-k", "auto"], "--stream fits one model: give -k N"),
        (["-k", "2", "--passes", "0"], "--passes must be >= 1"),
        (["-k", "2", "--batch-size", "0"], "--batch-size must be >= 1"),
        # refused before connecting: nothing listens on port 1, so a connection attempt
        # would end in another message (review finding: the cluster was started first)
        (["-k", "2", "--scheduler", "tcp://127.0.0.1:1"], "--stream reads the file here"),
    ],
)
def test_cli_stream_bad_arguments(tmp_path, capsys, extra, match):
    path = tmp_path / "d.npy"
    np.save(path, _mixture(100, seed=24))
    code = cli.main(["fit", str(path), "--stream", *extra, "-o", str(tmp_path / "o")])
    assert code == 2
    assert re.search(match, capsys.readouterr().err)


def test_cli_resume_checks_components_and_columns(tmp_path, capsys):
    X = _mixture(4000, seed=25)
    path = tmp_path / "d.npy"
    np.save(path, X)
    args = ["fit", str(path), "--stream", "-k", "4", "-o", str(tmp_path / "o"), "-q"]
    assert cli.main(args) == 0
    model = str(tmp_path / "o" / "model.json")
    assert cli.main(["fit", "--resume", model, str(path), "-k", "3", "-o", str(tmp_path)]) == 2
    assert "continues a model with 4 components" in capsys.readouterr().err
    np.save(path, X[:, :3])
    assert cli.main(["fit", "--resume", model, str(path), "-o", str(tmp_path / "p")]) == 2
    assert "the model expects 5 features" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_runs_and_prints_its_tables(capsys):
    """Smoke test of benchmarks/bench_online.py (no assertion on time)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_online.py"
    spec = importlib.util.spec_from_file_location("bench_online", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--rows", "20000", "--batch", "500", "--passes", "2", "--repeats", "1",
                "--spreads", "3", "--memory-csv-gb", "0.002"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 2
    gap = float(rows[0].split("|")[6])
    assert abs(gap) < 0.01  # one pass of 40 batches on well-separated data
    assert re.search(r"ratio \d+\.\d\d \(target <= 4\)", out)
    assert re.search(r"peak resident memory \d+ MB", out)


def test_partial_fit_on_dask_takes_a_scalar_sample_weight():
    """A scalar sample_weight is one weight per row on Dask too (it used to be sliced as a
    0-d array: IndexError)."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(6, 1, (400, 2))])
    lazy = da.from_array(X, chunks=(200, 2))
    on_dask = GaussianMixture(2, random_state=0).partial_fit(lazy, sample_weight=2.0)
    in_memory = GaussianMixture(2, random_state=0)
    for start in range(0, 800, 200):
        in_memory.partial_fit(X[start:start + 200], sample_weight=2.0)
    np.testing.assert_allclose(on_dask.means_, in_memory.means_, rtol=1e-10)


def test_chunked_csv_with_cr_line_ends_reads_every_row(tmp_path):
    # Lines ended by CR alone (old Mac files): the chunked reader dropped the header by
    # find("\n") and with it the whole file ('no data rows'); read_data read them.
    X = np.random.default_rng(0).normal(size=(50, 2))
    path = tmp_path / "cr.csv"
    path.write_bytes(("a,b\r" + "".join(f"{float(x)!r},{float(y)!r}\r" for x, y in X)).encode())
    data = _readers.open_chunked(str(path))
    np.testing.assert_array_equal(np.concatenate(list(data.chunks())), X)
    np.testing.assert_array_equal(_readers.read_data(str(path)).X, X)


def test_chunked_csv_with_cr_line_ends_names_a_bad_cell(tmp_path):
    # The line-by-line parse split on LF only: a CR-ended file's bad cell raised the csv
    # module's "new-line character seen in unquoted field" (an internal error).
    path = tmp_path / "cr.csv"
    path.write_bytes(b"a,b\r1,2\r3,x\r5,6\r")
    with pytest.raises(_readers.DataError, match=r"non-numeric value 'x' at line 3"):
        list(_readers.open_chunked(str(path)).chunks())
