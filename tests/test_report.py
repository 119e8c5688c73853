"""softzoo report / CalibrationPlot: the plots' numbers, every family, the CLI and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import every_family
from matplotlib.image import imread

import softzoo
from softzoo.callbacks import CalibrationPlot
from softzoo.cli import main
from softzoo.data import SyntheticDataModule, TabularDataModule
from softzoo.families import get_family
from softzoo.models import SoftRegressor
from softzoo.report import RELIABILITY_LEVELS, ReportData, reliability_curve, write_report
from softzoo.report.cli import data_module_from_config
from softzoo.runner import QUIET_RUN

PLOTS = ["mean_vs_actual", "pit", "reliability", "width_vs_prediction"]


def _gaussian_sample(scale_factor: float, n: int = 20000) -> ReportData:
    loc, scale = torch.randn(n), torch.rand(n) + 0.5
    y = loc + scale * torch.randn(n)
    return ReportData(get_family("gaussian"), (loc, scale * scale_factor), y)


def test_reliability_of_a_calibrated_model_is_the_diagonal() -> None:
    observed = reliability_curve(_gaussian_sample(1.0))
    assert torch.allclose(observed, torch.tensor(RELIABILITY_LEVELS), atol=0.015)


def test_reliability_of_an_overconfident_model_lies_below_it() -> None:
    observed = reliability_curve(_gaussian_sample(1 / 3))
    assert (observed < torch.tensor(RELIABILITY_LEVELS) - 0.05).all()


def _targets(family: str, n: int) -> torch.Tensor:
    base = torch.rand(n) * 4 + 0.5
    return torch.poisson(base) if get_family(family).discrete else base


def _png_size(path: Path) -> tuple[int, int]:
    image = imread(path)
    return image.shape[1], image.shape[0]


@pytest.mark.parametrize("family", every_family())
def test_report_for_every_family(family: str, tmp_path: Path) -> None:
    model = SoftRegressor(3, family=family, hidden=[8], target_name="load_kw").eval()
    x = torch.randn(700, 3)
    files = write_report(model, x, _targets(family, 700), tmp_path, title=f"t-{family}")
    probabilistic = get_family(family).probabilistic
    assert sorted(files) == sorted([*(PLOTS if probabilistic else ["mean_vs_actual"]), "report"])
    text = (tmp_path / "report.md").read_text()
    assert text.startswith(f"# softzoo report: t-{family}")
    for name, path in files.items():
        if name != "report":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert _png_size(path) == (672, 552)  # 5.6 x 4.6 in at 120 dpi: legible
            assert f"![{name}]({name}.png)" in text
    assert ("is a point predictor" in text) != probabilistic
    assert "700 rows" in text


def test_report_metrics_are_the_models_evaluate(tmp_path: Path) -> None:
    model = SoftRegressor(2, family="gamma", hidden=[8]).eval()
    x, y = torch.randn(300, 2), torch.rand(300) + 0.1
    write_report(model, x, y, tmp_path)
    text = (tmp_path / "report.md").read_text()
    metrics = model.evaluate(x, y)
    assert f"| NLL (nats per row) | {metrics['nll']:.6g} |" in text
    assert f"| share of rows inside the 90 % interval (PICP) | {metrics['picp_90']:.6g} |" in text


def test_report_refuses_bad_targets_and_a_file_as_output(tmp_path: Path) -> None:
    model = SoftRegressor(2, family="gamma", hidden=[8]).eval()
    with pytest.raises(ValueError, match="family 'gamma' needs y > 0"):
        write_report(model, torch.randn(5, 2), -torch.ones(5), tmp_path)
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        write_report(model, torch.randn(5, 2), torch.ones(5), tmp_path / "file")
    assert (tmp_path / "file").read_text() == "keep me"


def test_cli_report_on_a_zoo_model_reproduces_its_card(tmp_path: Path, capsys) -> None:
    name = "energy-gamma-softplus"
    assert main(["report", "--model", name, "--output", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'report.md'}" in capsys.readouterr().out
    text = (tmp_path / "report.md").read_text()
    card = softzoo.get_model_weights(name).card.metrics
    assert f"| NLL (nats per row) | {card['nll']:.6g} |" in text
    assert "test split of the data recorded in zoo model 'energy-gamma-softplus'" in text
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == PLOTS


@pytest.mark.slow
def test_cli_report_on_a_fresh_checkpoint_its_splits_and_a_file(
    tmp_path, monkeypatch, yacht_fit
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *yacht_fit(*QUIET_RUN)]) == 0
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert main(["report", "--ckpt_path", str(ckpt), "--output", "rep"]) == 0
    assert "62 rows" in (tmp_path / "rep/report.md").read_text()  # 20 % of yacht's 308
    assert main(["report", "--ckpt_path", str(ckpt), "--split", "val", "--output", "val"]) == 0
    assert "31 rows" in (tmp_path / "val/report.md").read_text()
    softzoo.datasets.load_frame("yacht").head(40).to_csv(tmp_path / "rows.csv", index=False)
    assert main(["report", "--ckpt_path", str(ckpt), "--data", "rows.csv", "--output", "f"]) == 0
    assert "file `rows.csv`, 40 rows" in (tmp_path / "f/report.md").read_text()


def test_cli_report_needs_a_model_and_an_output(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--output", "x"])
    assert exit_info.value.code == 2
    assert "one of the arguments --ckpt_path --model is required" in capsys.readouterr().err


def test_recorded_data_module_must_be_a_softzoo_one(tmp_path, monkeypatch) -> None:
    # a module that would leave a marker file if anything imported it
    marker = tmp_path / "imported"
    (tmp_path / "planted_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for class_path in ("os.system", "planted_module.X", "this.X"):
        with pytest.raises(ValueError, match=r"is not one softzoo may rebuild .* nothing was"):
            data_module_from_config({"class_path": class_path, "init_args": {}})
    assert not marker.exists()
    module = data_module_from_config(
        {"_class_path": "softzoo.data.TabularDataModule", "dataset": "yacht", "seed": 3}
    )
    assert isinstance(module, TabularDataModule) and module.seed == 3


def test_calibration_plot_callback_writes_the_report_of_trainer_test(
    tmp_path: Path, quiet_trainer
) -> None:
    data = SyntheticDataModule(n=600, n_features=2, batch_size=64)
    model = SoftRegressor(2, hidden=[16], lr=1e-2)
    trainer = quiet_trainer(
        max_epochs=2, callbacks=[CalibrationPlot(tmp_path / "report", title="synthetic")]
    )
    trainer.fit(model, data)
    (result,) = trainer.test(model, data, verbose=False)
    text = (tmp_path / "report/report.md").read_text()
    assert text.startswith("# softzoo report: synthetic")
    (nll_line,) = [line for line in text.splitlines() if line.startswith("| NLL")]
    assert float(nll_line.split("|")[2]) == pytest.approx(result["test_nll"], rel=1e-5)
    assert "120 rows" in text
    assert sorted(p.stem for p in (tmp_path / "report").glob("*.png")) == PLOTS
