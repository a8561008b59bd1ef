"""All 14 of mclust's models through the command line, summaries and mclust's faithful table.

Issue 11, items 2 and 4: ``-c`` takes every model (and the presets auto, all, sklearn); fit,
predict, sample and info work for each; summaries say the model in words.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaussmix import cli, families
from gaussmix._summary import model_words
from gaussmix.datasets import load_faithful
from gaussmix.io import load_model

MODELS = families.MCLUST_MODELS

# The words each model's summary must say (Celeux & Govaert's decomposition
# Sigma_k = lambda_k D_k A_k D_k^T: E equal, V variable, I identity), written out here
# independently of the family objects.
WORDS = {
    "EII": "equal volume, spherical",
    "VII": "variable volume, spherical",
    "EEI": "equal volume, equal shape, axis-aligned",
    "VEI": "variable volume, equal shape, axis-aligned",
    "EVI": "equal volume, variable shape, axis-aligned",
    "VVI": "variable volume, variable shape, axis-aligned",
    "EEE": "equal volume, equal shape, equal orientation",
    "VEE": "variable volume, equal shape, equal orientation",
    "EVE": "equal volume, variable shape, equal orientation",
    "VVE": "variable volume, variable shape, equal orientation",
    "EEV": "equal volume, equal shape, variable orientation",
    "VEV": "variable volume, equal shape, variable orientation",
    "EVV": "equal volume, variable shape, variable orientation",
    "VVV": "variable volume, variable shape, variable orientation",
}


def test_words_follow_the_letters_of_mclusts_name():
    letters = {"E": "equal", "V": "variable"}
    for name in MODELS:
        words = model_words(families.get(name))
        assert words == WORDS[name]
        assert words.startswith(letters[name[0]] + " volume")
        if name[1] == "I":
            assert "spherical" in words
        else:
            assert f"{letters[name[1]]} shape" in words
            assert ("axis-aligned" in words) == (name[2] == "I")


@pytest.fixture(scope="module")
def faithful_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "faithful.csv"
    np.savetxt(path, load_faithful(), delimiter=",", header="eruptions,waiting", comments="")
    return path


@pytest.mark.parametrize("name", MODELS)
def test_fit_predict_sample_info_for_every_model(name, faithful_csv, tmp_path, capsys):
    out = tmp_path / "out"
    family = families.get(name)
    assert cli.main(["fit", str(faithful_csv), "-k", "3", "-c", name, "--seed", "0",
                     "--no-plots", "-o", str(out)]) == 0
    summary = capsys.readouterr().out
    assert f"covariance type  {family.name} (" in summary
    assert WORDS[name] in summary
    # The file holds gaussmix's name; the model loads and is of the asked-for family.
    doc = json.loads((out / "model.json").read_text())
    assert doc["covariance_type"] == family.name
    model = load_model(out / "model.json")
    assert families.of_model(model) is family and model.n_components == 3
    X = load_faithful()

    assert cli.main(["predict", str(out / "model.json"), str(faithful_csv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split(",")[:2] == ["row", "label"]
    labels = np.array([int(line.split(",")[1]) for line in lines[1:]])
    np.testing.assert_array_equal(labels, model.predict(X))

    assert cli.main(["sample", str(out / "model.json"), "-n", "40", "--seed", "1"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "eruptions,waiting" and len(rows) == 41
    sample = np.array([[float(v) for v in r.split(",")] for r in rows[1:]])
    assert np.isfinite(sample).all()
    np.testing.assert_allclose(sample, model.sample(40, random_state=1)[0], rtol=1e-6)

    assert cli.main(["info", str(out / "model.json")]) == 0
    info = capsys.readouterr().out
    assert f"{family.name} covariance ({'' if family.name == name else name + ': '}" in info
    assert WORDS[name] in info and family.description in info


def test_dash_c_presets_and_lists():
    parse = cli._parse_covariances
    assert parse("auto") is None  # select_model's own default set
    assert parse("all") == tuple(families.get(n).name for n in MODELS)
    assert len(parse("all")) == 14 and parse("all")[0] == "EII"
    assert parse("sklearn") == ("spherical", "diag", "tied", "full")
    assert parse("VVE, EEE ,tied,VVV") == ("VVE", "tied", "full")
    for name in MODELS:
        assert parse(name) == (families.get(name).name,)
    with pytest.raises(cli.UserError, match="auto, all or sklearn"):
        parse("VVX")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["select", "-c", "auto"], "default"),
        (["select"], "default"),
        (["select", "-c", "all"], tuple(families.get(n).name for n in MODELS)),
        (["select", "--covariance", "sklearn"], ("spherical", "diag", "tied", "full")),
        (["fit", "-k", "auto", "-c", "all"], tuple(families.get(n).name for n in MODELS)),
        (["fit", "-k", "2", "-c", "sklearn"], ("spherical", "diag", "tied", "full")),
        (["fit", "-k", "auto", "-c", "VEV"], ("VEV",)),
        (["fit", "-k", "auto"], ("full",)),
    ],
)
def test_selection_gets_the_covariance_types_asked_for(
    argv, expected, faithful_csv, tmp_path, monkeypatch, capsys
):
    """-c auto leaves covariance_types to select_model; all / sklearn / names pass them."""
    import gaussmix.selection

    seen = {}

    def fake_select_model(X, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(gaussmix.selection, "select_model", fake_select_model)
    command, *rest = argv
    code = cli.main([command, str(faithful_csv), *rest, "--no-plots", "-o", str(tmp_path / "o")])
    assert code == cli.EXIT_USER and "stopped by the test" in capsys.readouterr().err
    assert seen["n_components"]
    if expected == "default":
        assert "covariance_types" not in seen
    else:
        assert seen["covariance_types"] == expected


def test_fit_help_names_all_14_models_and_the_presets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ", ".join(MODELS) in text
    for preset in ("auto (select_model's default set)", "all (the 14)", "sklearn"):
        assert preset in text


# ---------------------------------------------------------------------------------------
# mclust's 14-model table for Old Faithful, shipped as data (no R needed)

# What mclust prints for mclustBIC(faithful) (mclust 6.0.0), written out here as printed:
# the four models gaussmix shipped before, and mclust's top three over the 14.
PRINTED = {
    ("VII", 1): -4024.721, ("VII", 9): -2919.415, ("VVI", 2): -2346.065,
    ("EEE", 1): -2607.623, ("EEE", 3): -2314.316, ("VVV", 2): -2322.192,
    ("VVV", 9): -2460.398, ("VEE", 3): -2322.103,
}


def test_mclust_table_has_the_14_models_in_mclusts_order():
    from gaussmix.datasets import faithful_mclust_table

    rows = faithful_mclust_table()
    assert [(r["model"], r["n_components"]) for r in rows] == [
        (m, g) for m in MODELS for g in range(1, 10)
    ]
    best = max(rows, key=lambda r: r["bic"])
    assert (best["model"], best["n_components"]) == ("EEE", 3)


def test_mclust_table_counts_are_gaussmixs_and_its_bic_is_its_log_likelihood():
    """mclust's nMclustParams equals each family's n_parameters, and mclust's BIC is
    2 log L - p log n with n = 272 (so the stored log-likelihoods are mclust's)."""
    from gaussmix.datasets import faithful_mclust_table

    n = len(load_faithful())
    for row in faithful_mclust_table():
        p = families.get(row["model"]).n_parameters(row["n_components"], 2)
        assert row["n_parameters"] == p, row
        assert row["bic"] == pytest.approx(
            2 * row["log_likelihood"] - p * np.log(n), abs=1e-6
        ), row


def test_mclust_bic_presets_round_as_mclust_prints():
    from gaussmix.datasets import faithful_mclust_bic, faithful_mclust_table

    four, everything = faithful_mclust_bic(), faithful_mclust_bic("all")
    assert list(four) == ["VII", "VVI", "EEE", "VVV"]
    assert list(everything) == list(MODELS)
    assert faithful_mclust_bic(["VVE", "EEE"]).keys() == {"VVE", "EEE"}
    for (model, g), value in PRINTED.items():
        assert everything[model][g] == value
        if model in four:
            assert four[model][g] == value
    full = {(r["model"], r["n_components"]): r["bic"] for r in faithful_mclust_table()}
    for model, row in everything.items():
        for g, value in row.items():
            assert abs(value - full[model, g]) <= 0.0005 + 1e-9
    with pytest.raises(ValueError, match="mclust's names"):
        faithful_mclust_bic(["XYZ"])


def test_one_feature_every_model_is_equal_or_variable_variance():
    """With one feature there is no orientation to turn (EVE and VVE's joint solver once
    raised on it, failing select_model's default grid on 1-D data): every model is one
    variance per component or one for all, and selection runs over all 14."""
    from gaussmix import select_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 1))
    X[:20] += 4.0
    res = select_model(X, n_components=range(1, 4), random_state=0)
    two = {r["covariance_type"]: r["log_likelihood"] for r in res.table
           if r["n_components"] == 2}
    assert len(two) == 14 and all(v is not None for v in two.values())
    equal = ["EII", "EEI", "EVI", "tied", "EVE", "EEV", "EVV"]
    variable = ["spherical", "VEI", "diag", "VEE", "VVE", "VEV", "full"]
    for group in (equal, variable):
        assert max(two[t] for t in group) - min(two[t] for t in group) < 1e-6
    assert two["full"] > two["tied"]
