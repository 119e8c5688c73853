"""One implementation per fact: export/predict.py is standalone (numpy + onnxruntime), so
its copies of softzoo's facts are checked here against the package, family by family; and
the model's handshake with its data module is one named Protocol."""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import ROOT, every_family, make_quiet_trainer

from softzoo.data import SyntheticDataModule, TabularDataModule, UCISplitDataModule
from softzoo.data.roles import category_text
from softzoo.families import Mixture, get_family, list_families
from softzoo.models import SoftRegressor
from softzoo.models.data_contract import missing_members

sys.path.insert(0, str(ROOT / "export"))
import predict

PROBABILISTIC = [n for n in list_families() if get_family(n).probabilistic]


def test_predict_py_knows_every_family_and_its_parameters() -> None:
    assert {n: list(get_family(n).param_names) for n in list_families()} == predict.FAMILY_PARAMS


def _params(name: str, rows: int, members: int | None = None) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    shape = (rows,) if members is None else (rows, members)
    values = {
        "loc": torch.randn(shape, generator=generator, dtype=torch.float64),
        "scale": 0.2 + torch.rand(shape, generator=generator, dtype=torch.float64),
        "df": 2.5 + 5 * torch.rand(shape, generator=generator, dtype=torch.float64),
        "concentration": 0.5 + 4 * torch.rand(shape, generator=generator, dtype=torch.float64),
        "rate": 0.5 + 4 * torch.rand(shape, generator=generator, dtype=torch.float64),
        "mean": 0.5 + 8 * torch.rand(shape, generator=generator, dtype=torch.float64),
        "zero_logit": torch.randn(shape, generator=generator, dtype=torch.float64),
        "inflation_logit": torch.randn(shape, generator=generator, dtype=torch.float64),
        "dispersion": 0.3 + 2 * torch.rand(shape, generator=generator, dtype=torch.float64),
        "power": 1.1 + 0.8 * torch.rand(shape, generator=generator, dtype=torch.float64),
    }
    return tuple(values[p] for p in get_family(name).param_names)


@pytest.mark.parametrize("name", every_family(PROBABILISTIC))
def test_predict_py_cdf_is_the_familys(name: str) -> None:
    family = get_family(name)
    params = _params(name, 200)
    y = (
        torch.linspace(0.05, 6.0, 200, dtype=torch.float64)
        if family.support != "real"
        else torch.linspace(-3, 3, 200, dtype=torch.float64)
    )
    y = torch.where(torch.arange(200) % 7 == 0, 0.0, y) if family.zero_mass else y
    y = torch.floor(y) if family.discrete else y
    expected = family.cdf(params, y).numpy()
    got = predict.family_cdf(
        name, {n: p.numpy() for n, p in zip(family.param_names, params, strict=True)}, y.numpy()
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("members", [None, 3])
@pytest.mark.parametrize(
    "name",
    # the Tweedie's numpy CDF sums a series per bisection step: 20-40 s, under slow
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "tweedie" else n
        for n in every_family(PROBABILISTIC)
    ],
)
def test_predict_py_quantiles_are_the_familys_and_the_mixtures(name: str, members) -> None:
    base = get_family(name)
    family = base if members is None else Mixture(base, members)
    params = _params(name, 40, members)
    named = {n: p.numpy() for n, p in zip(base.param_names, params, strict=True)}
    for q in (0.05, 0.5, 0.95):
        expected = family.quantile(params, q).numpy()
        got = predict.mixture_quantile(name, named, q)
        if base.discrete:
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


CELLS = [
    " Adelie ",
    "007",
    "7",
    "7.0",
    "2007",
    "1e3",
    "A13",
    "true",
    "True",
    "FALSE",
    "",
    "NA",
    "n/a",
    "3.25",
]


@pytest.mark.parametrize("dtype", ["text", "int64", "float64", "bool", "category"])
def test_predict_py_reads_a_category_as_softzoo_does(dtype: str) -> None:
    """A cell's category from its text and the column's recorded dtype, in predict.py and
    in the package (where pandas has already made the NA tokens missing cells)."""
    for cell in CELLS:
        expected = None if cell.strip() in predict.NA_TOKENS else category_text(cell, dtype)
        assert predict._category(cell, dtype) == (expected or ""), (cell, dtype)


@pytest.mark.parametrize("module", [SyntheticDataModule, TabularDataModule, UCISplitDataModule])
def test_softzoo_data_modules_fulfil_the_models_protocol(module) -> None:
    assert missing_members(module) == []


def test_another_data_module_is_refused_with_what_it_lacks() -> None:
    class Plain(pl.LightningDataModule):
        def train_dataloader(self):
            return [(torch.zeros(4, 1), torch.zeros(4))]

    with pytest.raises(
        ValueError,
        match=r"SoftRegressor trains on softzoo data modules.*Plain lacks member_shuffles, n_features",
    ):
        make_quiet_trainer(max_epochs=1).fit(SoftRegressor(1, hidden=[4]), Plain())


@pytest.mark.parametrize("name", list_families())
def test_calibration_follows_the_familys_attribute(name: str) -> None:
    family = get_family(name)
    if not family.probabilistic:
        return
    model = SoftRegressor(1, family=name, hidden=[4], calibration="conformal")
    expected = "level" if family.calibration_map == "level" else "scale"
    assert model.calibration_method == expected
    ensemble = SoftRegressor(1, family=name, hidden=[4], calibration="conformal", ensemble_size=2)
    assert ensemble.calibration_method == "level"
