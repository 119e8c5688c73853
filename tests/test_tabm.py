"""Numeric embeddings (piecewise-linear on quantile bins, periodic) and the TabM-style
ensembles (BatchEnsemble, TabM-mini): bins from training rows only, saturation outside
them, what members share and where they differ, the loss they train on, and ONNX parity
of every ensemble type with embeddings for every family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from softzoo.data import TabularDataModule
from softzoo.families import list_families
from softzoo.models import SoftRegressor
from softzoo.nn import MLP
from softzoo.nn.embeddings import PeriodicEmbedding, PiecewiseLinearEncoding, bin_edges
from softzoo.nn.members import BatchEnsembleLinear, MemberLinear, ScaleEnsemble
from softzoo.onnx import check_parity, export


# ---- piecewise-linear encoding -----------------------------------------------------------
def test_bin_edges_are_the_distinct_quantiles_of_the_observed_values() -> None:
    values = torch.tensor([5.0, 1.0, float("nan"), 3.0, 2.0, 4.0, 2.0, 9.0])
    observed = values[~torch.isnan(values)].numpy()
    expected = np.unique(
        np.quantile(observed, np.linspace(0, 1, 5), method="lower").astype(np.float32)
    )
    np.testing.assert_array_equal(bin_edges(values, 4).numpy(), expected)
    assert bin_edges(torch.tensor([1.0, 0.0, 1.0]), 48).tolist() == [0.0, 1.0]  # one bin
    assert bin_edges(torch.full((5,), 7.0), 48).tolist() == [7.0]  # no bin


def test_the_encoding_of_a_value_in_a_bin_and_on_its_edges() -> None:
    encoding = PiecewiseLinearEncoding(1, n_bins=4)
    encoding.fit(torch.arange(9.0)[:, None])  # edges 0, 2, 4, 6, 8
    got = encoding(torch.tensor([[0.0], [2.0], [3.0], [8.0]]))
    expected = [[0, 0, 0, 0], [1, 0, 0, 0], [1, 0.5, 0, 0], [1, 1, 1, 1]]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32))


def test_values_outside_the_training_bins_saturate() -> None:
    encoding = PiecewiseLinearEncoding(2, n_bins=8)
    encoding.fit(torch.randn(500, 2))
    low, high = encoding.left[:, 0], encoding.left[:, -1] + encoding.width[:, -1]
    far = torch.stack([low - 1e6, low - 1.0, high + 1.0, high * 100 + 1e6])
    at_edges = torch.stack([low, low, high, high])
    torch.testing.assert_close(encoding(far), encoding(at_edges))
    assert encoding(far).min() == 0 and encoding(far).max() == 1


def test_a_column_with_few_distinct_values_gets_fewer_bins_and_zeros_in_the_rest() -> None:
    encoding = PiecewiseLinearEncoding(1, n_bins=6)
    encoding.fit(torch.tensor([[0.0], [1.0], [1.0], [0.0]]))
    assert encoding.used[0].tolist() == [1, 0, 0, 0, 0, 0]
    assert encoding(torch.tensor([[1.0]]))[0].tolist() == [1, 0, 0, 0, 0, 0]


def _table(tmp_path, val_test_offset: float) -> TabularDataModule:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n)})
    frame["y"] = np.exp(frame["a"]) + frame["b"] + 0.1
    frame["split"] = np.where(
        np.arange(n) < 300, "train", np.where(np.arange(n) < 350, "val", "test")
    )
    held_out = frame["split"] != "train"
    frame.loc[held_out, ["a", "b"]] += val_test_offset  # only validation and test rows move
    path = tmp_path / f"table{val_test_offset}.csv"
    frame.to_csv(path, index=False)
    data = TabularDataModule(path=str(path), target="y", split_column="split")
    data.setup("fit")
    return data


@pytest.mark.parametrize("embedding", ["piecewise_linear", "periodic"])
def test_bins_and_statistics_come_from_the_training_rows_only(tmp_path, embedding) -> None:
    """Changing every validation and test row moves no bin edge and no statistic."""
    states = []
    for offset in (0.0, 1000.0):
        data = _table(tmp_path, offset)
        model = SoftRegressor(
            data.n_features, feature_names=data.feature_names, numeric_embedding=embedding
        )
        model._fit_scaling_on(data)
        states.append(
            {
                k: v
                for k, v in model.inputs.state_dict().items()
                if "numeric." in k or k in ("fill", "shift", "scale")
            }
        )
    for key in states[0]:
        if key.startswith("numeric.") and embedding == "periodic":
            continue  # learned parameters, not fitted statistics
        torch.testing.assert_close(states[0][key], states[1][key], msg=key)
    if embedding == "piecewise_linear":
        assert states[0]["numeric.used"].sum() == 2 * 48


def test_missing_cells_are_imputed_before_the_encoding_and_keep_their_indicator() -> None:
    model = SoftRegressor(
        2,
        feature_names=["a", "b"],
        missing_indicators=["a"],
        numeric_embedding="piecewise_linear",
        numeric_bins=4,
    )
    x = torch.tensor([[float("nan"), 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 5.0]])
    model.fit_scaling(x, torch.rand(5) + 1)
    encoded = model.inputs(torch.tensor([[float("nan"), 2.0], [2.5, 2.0]]))
    assert encoded.shape == (2, 4 + 4 + 1)
    torch.testing.assert_close(encoded[0, :4], encoded[1, :4])  # the median fill: 2.5
    assert encoded[:, 8].tolist() == [1.0, 0.0]  # the indicator stays


def test_periodic_embedding_is_the_published_form() -> None:
    torch.manual_seed(0)
    embedding = PeriodicEmbedding(2, dim=3, n_frequencies=4, sigma=0.5)
    x = torch.randn(5, 2)
    got = embedding(x).reshape(5, 2, 3)
    for j in range(2):
        angle = 2 * torch.pi * x[:, j : j + 1] * embedding.frequencies[j]
        features = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)
        expected = torch.relu(features @ embedding.weight[j] + embedding.bias[j])
        torch.testing.assert_close(got[:, j], expected)


def test_independent_members_have_their_own_periodic_embeddings() -> None:
    model = SoftRegressor(2, numeric_embedding="periodic", ensemble_size=3)
    assert model.inputs.numeric.frequencies.shape[0] == 3
    shared = SoftRegressor(2, numeric_embedding="periodic", ensemble_size=3, ensemble_type="mini")
    assert shared.inputs.numeric.frequencies.dim() == 2  # TabM: one embedding for all


# ---- TabM-style ensembles ------------------------------------------------------------------
def test_batch_ensemble_members_share_w_and_differ_in_r_s_and_bias() -> None:
    torch.manual_seed(0)
    mlp = MLP(6, hidden=(5, 4), members=3, ensemble_type="batch", chunks=[2, 4])
    first, second = mlp.net[0], mlp.net[2]
    assert isinstance(first, BatchEnsembleLinear) and first.weight.shape == (5, 6)
    assert set(first.r.unique().tolist()) <= {-1.0, 1.0}  # random signs, one per chunk
    assert (first.r[:, :2] == first.r[:, :1]).all() and (first.r[:, 2:] == first.r[:, 2:3]).all()
    assert (second.r == 1).all() and (first.s == 1).all() and (second.s == 1).all()
    assert (first.bias == first.bias[0]).all()  # the same start for every member
    x = torch.randn(7, 6)
    member = 1
    expected = ((x * first.r[member]) @ first.weight.T) * first.s[member] + first.bias[member]
    torch.testing.assert_close(first(x)[member], expected)


def test_mini_members_differ_only_in_their_input_scaling() -> None:
    mlp = MLP(4, hidden=(8, 8), members=5, ensemble_type="mini")
    assert isinstance(mlp.net[0], ScaleEnsemble)
    per_member = [n for n, p in mlp.named_parameters() if p.dim() and p.shape[0] == 5]
    assert per_member == ["net.0.weight"]
    assert all(type(m) is torch.nn.Linear for m in mlp.net if isinstance(m, torch.nn.Linear))
    x = torch.randn(3, 4)
    out = mlp(x)
    assert out.shape == (5, 3, 8)
    torch.testing.assert_close(out[2], mlp.net[1:](x * mlp.net[0].weight[2]))


@pytest.mark.parametrize("ensemble_type", ["mini", "batch"])
def test_the_first_scaling_starts_at_random_signs_per_block_or_at_one(ensemble_type) -> None:
    """TabM's random signs, one per feature block (a categorical column's embedding is one
    block); ``ones`` starts every member at 1 (the recipe's for a table with text columns
    or without the encoding)."""
    torch.manual_seed(0)
    scaling = {"mini": lambda m: m.body.net[0].weight, "batch": lambda m: m.body.net[0].r}[
        ensemble_type
    ]
    options = {"ensemble_size": 8, "ensemble_type": ensemble_type, "feature_names": list("abc")}
    options["categories"] = {"c": ["x", "y", "z"]}
    signed = SoftRegressor(3, numeric_embedding="piecewise_linear", numeric_bins=4, **options)
    signs = scaling(signed)
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    for block in signs.split(signed.inputs.chunks(), dim=1):
        assert (block == block[:, :1]).all()  # one sign per block
    ones = SoftRegressor(3, first_scaling="ones", **options)
    assert (scaling(ones) == 1).all()
    recipe = SoftRegressor(3, first_scaling="auto", train_rows=2_000, **options)
    assert recipe.hparams.first_scaling == "ones" and (scaling(recipe) == 1).all()
    del options["categories"]
    numeric = SoftRegressor(
        3, first_scaling="auto", numeric_embedding="piecewise_linear", train_rows=2_000, **options
    )
    assert numeric.hparams.first_scaling == "random_signs"  # all numeric, encoded


def test_every_member_keeps_its_own_heads() -> None:
    model = SoftRegressor(3, ensemble_size=4, ensemble_type="mini")
    assert isinstance(model.heads.linear, MemberLinear)


@pytest.mark.parametrize("ensemble_type", ["batch", "mini"])
def test_the_loss_of_a_tabm_ensemble_is_the_mean_of_its_members_losses(ensemble_type) -> None:
    torch.manual_seed(0)
    model = SoftRegressor(2, hidden=[8], ensemble_size=4, ensemble_type=ensemble_type)
    x, y = torch.randn(32, 2), torch.randn(32)
    model.fit_scaling(x, y)
    target = (y - model.y_shift) / model.y_scale
    params = model.scaled_params(x)
    base = model.family.base
    members = torch.stack(
        [base.loss(tuple(p[:, m] for p in params), target) for m in range(4)], dim=-1
    )
    torch.testing.assert_close(model.training_loss(x, target, epoch=0), members.mean(-1))
    independent = SoftRegressor(2, hidden=[8], ensemble_size=4)
    independent.fit_scaling(x, y)
    params = independent.scaled_params(x)
    members = torch.stack(
        [base.loss(tuple(p[:, m] for p in params), target) for m in range(4)], dim=-1
    )
    torch.testing.assert_close(independent.training_loss(x, target, epoch=0), members.sum(-1))


ZERO_ONLY_SLOW = (
    "hurdle_gamma",
    "hurdle_lognormal",
    "zero_inflated_negative_binomial",
    "zero_inflated_poisson",
)


def _settings() -> list:
    """Every family with every ensemble type, embeddings alternating; one setting per
    family runs in the fast suite (the types rotate), the rest under ``slow``; of the
    zero families (one code path, `zero_mass`, for four of them) only the Tweedie."""
    settings = []
    for i, family in enumerate(list_families()):
        only_slow = family in ZERO_ONLY_SLOW
        for j, (ensemble_type, embedding) in enumerate(
            (
                ("independent", ["piecewise_linear", "periodic"][i % 2]),
                ("batch", ["periodic", "piecewise_linear"][i % 2]),
                ("mini", ["piecewise_linear", "periodic"][i % 2]),
            )
        ):
            marks = () if j == i % 3 and not only_slow else (pytest.mark.slow,)
            settings.append(pytest.param(family, ensemble_type, embedding, marks=marks))
    return settings


@pytest.mark.parametrize(("family", "ensemble_type", "embedding"), _settings())
def test_onnx_parity_of_every_ensemble_type_with_embeddings(
    tmp_path, family, ensemble_type, embedding
) -> None:
    """Parity rows include values exactly on every bin edge, 100x the training range on
    either side, and NaN (softzoo.onnx.parity)."""
    torch.manual_seed(0)
    model = SoftRegressor(
        3,
        family=family,
        hidden=[8, 8],
        feature_names=["a", "b", "colour"],
        categories={"colour": ["red", "blue"]},
        missing_indicators=["a"],
        ensemble_size=3,
        ensemble_type=ensemble_type,
        numeric_embedding=embedding,
        numeric_bins=6,
    )
    x = torch.randn(300, 3)
    x[:, 2] = torch.randint(2, 4, (300,)).float()
    x[::7, 0] = float("nan")
    y = torch.rand(300) * 5 + 0.5
    if model.family.discrete:
        y = y.round()
    model.fit_scaling(x, y)
    report = check_parity(model.eval(), export(model, tmp_path / "m.onnx"), n_random=64)
    assert report.passed, report.summary()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ensemble_type": "batch"}, "ensemble_type='batch' shares weights .* ensemble_size is 1"),
        ({"ensemble_type": "packed", "ensemble_size": 2}, "ensemble_type must be one of"),
        ({"numeric_embedding": "quantile"}, "numeric_embedding must be one of"),
        ({"numeric_bins": 0}, "numeric_bins must be a whole number >= 1"),
        ({"first_scaling": "zeros"}, "first_scaling must be one of"),
    ],
)
def test_bad_embedding_and_ensemble_type_options(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        SoftRegressor(2, **options)
