import math

import pytest
import torch
import torch.nn.functional as F

from softzoo.nn import (
    MLP,
    HeadSpec,
    ParameterHeads,
    PositiveHead,
    inverse_softplus,
    make_activation,
)


# ---- activations -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "expected"), [(-2.0, 0.126928), (0.0, math.log(2.0)), (5.0, 5.006715)]
)
def test_softplus_values(x: float, expected: float) -> None:
    act = make_activation("softplus")
    assert float(act(torch.tensor(x, dtype=torch.float64))) == pytest.approx(expected, abs=5e-7)


def test_softplus_zero_is_log_two_exactly_in_float32() -> None:
    assert make_activation("softplus")(torch.zeros(1)).item() == torch.tensor(math.log(2.0)).item()


def test_softplus_derivative_is_sigmoid() -> None:
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64, requires_grad=True)
    make_activation("softplus", threshold=40.0)(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach()), rtol=1e-12, atol=1e-15)


def test_softplus_beta_threshold_semantics() -> None:
    act = make_activation("softplus", beta=2.0, threshold=5.0)
    x = torch.tensor([-1.0, 2.0, 2.6], dtype=torch.float64)
    expected = torch.tensor([math.log1p(math.exp(-2.0)) / 2, math.log1p(math.exp(4.0)) / 2, 2.6])
    torch.testing.assert_close(act(x), expected.double())


@pytest.mark.parametrize("name", ["relu", "identity", "softplus", "gelu", "silu", "elu", "tanh"])
def test_every_activation_builds(name: str) -> None:
    assert make_activation(name)(torch.zeros(2)).shape == (2,)


def test_unknown_activation_lists_valid_names_and_suggests() -> None:
    with pytest.raises(
        ValueError, match=r"unknown activation 'softpluss'\. Did you mean 'softplus'\?"
    ) as err:
        make_activation("softpluss")
    assert "relu" in str(err.value) and "identity" in str(err.value)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_softplus_rejects_bad_beta(beta: float) -> None:
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        make_activation("softplus", beta=beta)


@pytest.mark.parametrize("threshold", [0.0, -5.0, 80.5, 1e9])
def test_softplus_rejects_bad_threshold(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 80\]"):
        make_activation("softplus", threshold=threshold)


def test_activation_with_wrong_keyword_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'relu' does not accept"):
        make_activation("relu", beta=2.0)


# ---- inverse softplus ----------------------------------------------------------------
# In float32 the rounding of x itself (relative 6e-8) is amplified by beta·x near tiny y,
# so the 1e-6 bound holds there for beta <= 1; float64 is exact for any beta.
@pytest.mark.parametrize(
    ("dtype", "beta"),
    [
        (torch.float64, 1.0),
        (torch.float64, 0.5),
        (torch.float64, 3.0),
        (torch.float32, 1.0),
        (torch.float32, 0.5),
    ],
)
def test_inverse_softplus_round_trip(dtype: torch.dtype, beta: float) -> None:
    y = torch.logspace(-6, 6, 1201, dtype=dtype)
    back = F.softplus(inverse_softplus(y, beta), beta=beta, threshold=80.0)
    rel = ((back - y).abs() / y).max().item()
    assert rel < (1e-6 if dtype == torch.float32 else 1e-12)


def test_inverse_softplus_is_finite_at_extremes() -> None:
    x = inverse_softplus(torch.tensor([1e-30, 1e30], dtype=torch.float64))
    assert torch.isfinite(x).all() and x[1].item() == 1e30


def test_inverse_softplus_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="needs y > 0"):
        inverse_softplus(torch.tensor([1.0, 0.0]))


# ---- MLP -------------------------------------------------------------------------------
def test_mlp_per_layer_activations() -> None:
    mlp = MLP(4, hidden=(8, 6, 5), activation=["relu", "softplus", "identity"])
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "ReLU", "Linear", "Softplus", "Linear", "Identity"]
    assert mlp(torch.randn(3, 4)).shape == (3, 5) and mlp.out_features == 5


def test_mlp_norm_dropout_and_softplus_kwargs() -> None:
    mlp = MLP(
        4,
        hidden=(8,),
        activation="softplus",
        activation_kwargs={"beta": 2.0},
        dropout=0.1,
        norm="layer",
    )
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "LayerNorm", "Softplus", "Dropout"]
    assert mlp.net[2].beta == 2.0


def test_mlp_without_hidden_layers_is_identity() -> None:
    x = torch.randn(2, 3)
    assert torch.equal(MLP(3, hidden=())(x), x)


def test_mlp_activation_count_mismatch() -> None:
    with pytest.raises(ValueError, match=r"got 1 activations .* for 2 hidden layers"):
        MLP(3, hidden=(4, 4), activation=["relu"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_features": 0}, "in_features must be a positive integer"),
        ({"hidden": (4, 0)}, "hidden layer widths must be positive integers"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"norm": "group"}, "unknown norm 'group'"),
        ({"activation": "sofplus"}, "Did you mean 'softplus'"),
    ],
)
def test_mlp_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"in_features": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        MLP(**args)


# ---- heads -----------------------------------------------------------------------------
def _very_negative_head(out_features: int = 3) -> PositiveHead:
    head = PositiveHead(4, out_features)
    with torch.no_grad():
        head.linear.weight.fill_(1.0)
        head.linear.bias.zero_()
    return head


@pytest.mark.parametrize("value", [-1.0, -100.0, -1e4])
def test_positive_head_strictly_positive_fp32(value: float) -> None:
    out = _very_negative_head()(torch.full((5, 4), value))
    assert out.dtype == torch.float32 and (out > 0).all() and not out.isnan().any()
    if value <= -100:
        assert torch.equal(out, torch.full_like(out, 1e-6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("value", [-1.0, -20.0, -1e4, 30.0])
def test_positive_head_float32_under_autocast(dtype: torch.dtype, value: float) -> None:
    head = _very_negative_head()
    with torch.autocast("cpu", dtype=dtype):
        out = head(torch.full((5, 4), value, dtype=dtype))
    assert out.dtype == torch.float32 and (out > 0).all() and torch.isfinite(out).all()
    expected = F.softplus(torch.tensor(4 * value, dtype=torch.float64)).item() + 1e-6
    assert out[0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_positive_head_init_value_is_every_initial_output() -> None:
    head = PositiveHead(6, 2, floor=1e-3, init_value=0.25)
    out = head(torch.randn(10, 6) * 100)
    torch.testing.assert_close(out, torch.full((10, 2), 0.25), rtol=1e-6, atol=0)


def test_positive_head_keeps_a_gradient_where_clamp_would_not() -> None:
    head = _very_negative_head(1)
    head(torch.full((1, 4), -5.0)).sum().backward()
    assert head.linear.bias.grad.abs().item() == pytest.approx(
        torch.sigmoid(torch.tensor(-20.0)).item()
    )


@pytest.mark.parametrize("floor", [0.0, -1e-6, float("inf")])
def test_positive_head_rejects_bad_floor(floor: float) -> None:
    with pytest.raises(ValueError, match="floor must be a finite number > 0"):
        PositiveHead(3, floor=floor)


def test_positive_head_rejects_init_below_floor() -> None:
    with pytest.raises(ValueError, match="init_value must exceed floor"):
        PositiveHead(3, floor=0.1, init_value=0.05)


def test_parameter_heads_order_lower_bound_and_init() -> None:
    specs = [
        HeadSpec("loc", init_value=3.0),
        HeadSpec("scale", True, init_value=2.0),
        HeadSpec("df", True, lower=2.0, init_value=10.0),
    ]
    heads = ParameterHeads(5, specs)
    loc, scale, df = heads(torch.randn(7, 5))
    torch.testing.assert_close(loc, torch.full((7,), 3.0))
    torch.testing.assert_close(scale, torch.full((7,), 2.0))
    torch.testing.assert_close(df, torch.full((7,), 10.0))
    with torch.no_grad():
        heads.linear.weight.fill_(1.0)
    _, scale, df = heads(torch.full((2, 5), -1e4))
    assert (scale > 0).all() and (df > 2.0).all()


def test_parameter_heads_reject_unreachable_init() -> None:
    with pytest.raises(ValueError, match="init_value of 'df' must exceed 2"):
        ParameterHeads(3, [HeadSpec("df", True, lower=2.0, init_value=1.5)])
