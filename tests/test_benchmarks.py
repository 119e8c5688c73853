import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from scipy import optimize, stats


def _load(name: str):
    """A benchmark script as a module (its folder on sys.path, as when run as a script)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_uci_single_model_scores_are_the_gaussian_ones() -> None:
    uci = _load("uci")
    loc, scale = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 0.5]])
    y = torch.tensor([0.5, 5.0, 2.1])
    scores = uci._gaussian_scores(loc, scale, y)
    expected = -stats.norm(loc[0].numpy(), scale[0].numpy()).logpdf(y.numpy()).mean()
    assert scores["nll"] == pytest.approx(expected, rel=1e-9)
    assert scores["rmse"] == pytest.approx(math.sqrt(((loc[0] - y) ** 2).mean().item()), rel=1e-6)
    assert scores["picp90"] == pytest.approx(2 / 3)


def test_uci_mixture_quantiles_and_nll() -> None:
    uci = _load("uci")
    loc = torch.tensor([[-2.0], [2.0]], dtype=torch.float64)
    scale = torch.ones(2, 1, dtype=torch.float64)
    q95 = optimize.brentq(
        lambda q: 0.5 * (stats.norm.cdf(q, -2, 1) + stats.norm.cdf(q, 2, 1)) - 0.95, 0, 9
    )
    edge = [float(q) for q in (q95 - 1e-3, q95 + 1e-3)]
    inside = uci._gaussian_scores(loc, scale, torch.tensor(edge, dtype=torch.float64))
    assert inside["picp90"] == 0.5  # y just below the upper end is covered, just above not
    nll = uci._gaussian_scores(loc, scale, torch.tensor([0.0]))["nll"]
    assert nll == pytest.approx(-math.log(stats.norm.pdf(0, 2, 1)), rel=1e-9)


def test_uci_best_published_is_the_lowest_of_every_published_row() -> None:
    uci = _load("uci")
    assert uci.best_published("yacht") == 0.16  # distributional gradient boosting
    assert uci.best_published("protein-tertiary-structure") == 2.63  # deep evidential
    assert uci.best_published("power-plant") == 2.60  # distributional gradient boosting
    assert uci.best_published("bostonHousing") == 2.35  # deep evidential (no DGBM row used)


def test_uci_targets_count_data_sets_at_or_below_the_bar() -> None:
    uci = _load("uci")
    run = lambda nll: {"nll_mean": nll}  # noqa: E731
    datasets = {
        "wine-quality-red": {r: run(0.89) for r in uci.RUNS},  # at the bars: counts
        "concrete": {r: run(3.2) for r in uci.RUNS},  # above every bar
    }
    assert uci._counts(datasets) == {
        "beats_mc_dropout": 1,
        "beats_deep_ensembles": 1,
        "default_single_beats_deep_ensembles": 1,
        "default_ensemble_beats_best_published": 1,
    }
    datasets["wine-quality-red"]["f_default_ensemble5"] = run(0.90)  # above 0.89 (NGBoost)
    assert uci._counts(datasets)["default_ensemble_beats_best_published"] == 0


def test_uci_reuses_only_the_data_sets_it_does_not_run_and_only_from_the_same_recipes(
    tmp_path,
) -> None:
    uci = _load("uci")
    recipes = {"protocol": uci.PROTOCOL_RECIPE, "default": uci.DEFAULT_RECIPE}
    earlier = tmp_path / "uci.json"
    earlier.write_text(json.dumps({"recipes": recipes, "datasets": {"yacht": 1, "wine": 2}}))
    assert uci.reused_datasets(str(earlier), ["wine"]) == {"yacht": 1}
    assert uci.reused_datasets(None, ["wine"]) == {}
    other = {**recipes, "default": {**uci.DEFAULT_RECIPE, "lr": 1.0}}
    earlier.write_text(json.dumps({"recipes": other, "datasets": {"yacht": 1}}))
    with pytest.raises(SystemExit, match="was run with other recipes"):
        uci.reused_datasets(str(earlier), ["wine"])


def test_uci_recipe_candidates_and_ranks() -> None:
    recipe = _load("uci_recipe")
    options = recipe.candidates("default")
    assert len(options) == math.prod(len(v) for v in recipe.GRIDS["default"].values())
    assert len({tuple(sorted(o.items())) for o in options}) == len(options)
    assert recipe._ranks([0.3, -1.0, 2.0]) == [2.0, 1.0, 3.0]
    raw = {"a": [[1.0, 2.0], [3.0, 0.0]], "b": [[0.0, 5.0]], "c": [[0.0, 1.0]]}
    recipe.GRIDS["tiny"] = {"lr": [1e-2, 1e-3]}
    try:
        summary = recipe.summarise("tiny", raw)
    finally:
        del recipe.GRIDS["tiny"]
    # per data set the mean over splits: a 2.0 vs 1.0, b 0 vs 5, c 0 vs 1: mean ranks 4/3, 5/3
    assert summary["chosen"] == {"lr": 1e-2}
    assert [c["mean_rank"] for c in summary["candidates"]] == pytest.approx([4 / 3, 5 / 3])
    assert [c["worst_split_nll"] for c in summary["candidates"]] == [3.0, 5.0]
    assert [c["blows_up_on"] for c in summary["candidates"]] == [[], ["b"]]  # 5 > 2.5 + 1


def test_uci_recipe_never_chooses_a_candidate_that_blows_up() -> None:
    recipe = _load("uci_recipe")
    # the first candidate ranks best on a and b but explodes on c (median 1.0, +1.5 nat)
    raw = {"a": [[0.0, 1.0, 2.0]], "b": [[0.0, 1.0, 2.0]], "c": [[2.5, 1.0, 0.9]]}
    recipe.GRIDS["tiny"] = {"lr": [1e-2, 3e-3, 1e-3]}
    try:
        summary = recipe.summarise("tiny", raw)
    finally:
        del recipe.GRIDS["tiny"]
    assert summary["candidates"][0]["settings"] == {"lr": 1e-2}
    assert summary["candidates"][0]["blows_up_on"] == ["c"]
    assert summary["chosen"] == {"lr": 3e-3}


@pytest.mark.slow
@pytest.mark.parametrize("script", [["uci.py"], ["uci_recipe.py", "default"]])
def test_uci_benchmarks_skip_cleanly_without_data(tmp_path, script) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / script[0]),
            *script[1:],
            "--root",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "skipped" in result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1])["skipped"] is True


def test_dead_units_experiment_records_every_epoch_and_summarises(tmp_path) -> None:
    dead = _load("dead_units")
    runs = {
        a: [dead.run("yacht", a, 0.05, 2, seed) for seed in (0, 1)] for a in ("relu", "softplus")
    }
    assert [len(r["history"]) for r in runs["relu"]] == [2, 2]
    summary = dead._summary(runs)
    for entry in summary.values():
        assert 0.0 <= entry["dead_final"] <= entry["dead_max"] <= 1.0
        assert entry["test_nll_median"] <= entry["test_nll_worst"]
    finals = [r["history"][-1]["dead_units/all"] for r in runs["relu"]]
    assert summary["relu"]["dead_final"] == pytest.approx(sum(finals) / 2)
    dead._plot({0.05: summary}, "test", tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_softzoo_bench_runs_the_checkouts_scripts_and_prints_their_json(tmp_path, capsys) -> None:
    from softzoo.cli import main

    args = ["bench", "uci", "--repo", str(ROOT), "--uci-root", str(tmp_path / "none")]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip())["skipped"] is True
    assert main(["bench", "--repo", str(tmp_path)]) == 2
    assert "no softzoo benchmarks under" in capsys.readouterr().err
    assert main(["bench", "nope", "--repo", str(ROOT)]) == 2
    assert (
        "unknown benchmark 'nope'; choose among: uci, train_throughput" in capsys.readouterr().err
    )


def test_tables_benchmark_reports_the_host_and_the_linear_baseline(tmp_path) -> None:
    tables = _load("tables")
    from softzoo.data import TabularDataModule

    data = TabularDataModule(dataset="penguins")
    baseline = tables._linear_baseline(data)
    assert 0.0 < baseline["picp_90"] <= 1.0 and 200 < baseline["rmse"] < 500
    cost = tables.embedding_cost(3000)
    assert cost["embedding_step_ratio"] == pytest.approx(
        cost["step_ms_with_4_categorical"] / cost["step_ms_numeric_only"], rel=0.01
    )
    host = _load("_results").host_info()
    assert {"cpu", "cpu_capability", "onnxruntime", "torch_threads"} <= set(host)


@pytest.mark.slow
def test_ensemble_benchmark_times_every_ensemble_type() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/ensemble.py"),
            "--dataset",
            "yacht",
            "--epochs",
            "1",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("ensemble5", "batch32", "mini32", "batch32_same_batch", "mini32_same_batch"):
        assert line[f"{key}_over_single"] > 0 and math.isfinite(line["test_nll"][key])
    assert line["host"]["cpu_capability"]


def test_results_of_an_emulated_host_class_are_kept_apart(monkeypatch) -> None:
    _load("uci")  # puts benchmarks/ on sys.path
    from _results import host_info, result_stem

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert result_stem("train_throughput") == "train_throughput"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "AVX2")
    assert result_stem("train_throughput") == "train_throughput_avx2"
    assert set(host_info()) >= {"cpu", "cpu_capability", "onnxruntime", "torch_threads"}


def test_peers_summary_counts_nll_wins_and_rmse_ratios() -> None:
    peers = _load("peers")
    results = {
        "a": {
            "softzoo": {"nll": 1.0, "rmse": 2.0},
            "lightgbm": {"nll": None, "rmse": 1.0},
            "ngboost": {"nll": 1.5, "rmse": 4.0},
        },
        "b": {
            "softzoo": {"nll": 2.0, "rmse": 3.0, "fit_s": 30.0},
            "catboost_y": {"nll": 1.9, "rmse": 3.0, "fit_s": 1.0},
            "catboost_log_y": {"nll": 1.8, "rmse": 3.5, "fit_s": 3.0},
        },
    }
    results["a"]["softzoo"]["fit_s"] = 8.0
    got = peers.summary(results)
    assert got["nll_wins"] == 1  # a: 1.0 <= 1.5 (a point model has no NLL); b: 2.0 > 1.8
    assert got["rmse_over_best_peer"] == {"a": 2.0, "b": 1.0, "worst": 2.0}
    assert got["fit_seconds"] == {"a": 8.0, "b": 30.0}
    # over the CatBoost fit a user keeps (log y: the better NLL); a has no CatBoost
    assert got["fit_seconds_over_catboost"] == {"b": 10.0, "worst": 10.0}
    count = {"catboost_y": {"nll": None, "rmse": 2.0}, "catboost_log_y": {"nll": None, "rmse": 3.0}}
    assert peers.kept_catboost(count) == "catboost_y"  # no NLL: the better RMSE


def test_peers_skip_a_missing_peer_and_refuse_a_changed_table(
    tmp_path, monkeypatch, capsys
) -> None:
    peers = _load("peers")
    assert not peers._available("no_such_peer_package")
    assert "no_such_peer_package is not installed" in capsys.readouterr().out
    monkeypatch.setattr(peers, "CACHE", tmp_path)
    (tmp_path / "CPS1988.csv").write_text("wage\n1\n")
    with pytest.raises(ValueError, match=r"CPS1988.csv has sha256 .*, expected ef5ee9"):
        peers.table_file("cps1988")
