"""TabularInput.fit on a large table works a column at a time; its statistics must equal
the whole-matrix formulas it replaced (the medians bit for bit: selection is exact; means
and deviations to float64 rounding, which summation order moves)."""

import torch

from softzoo.nn import TabularInput
from softzoo.nn.tabular import column_statistics


def _whole_matrix(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    numeric = x.double()
    observed = ~torch.isnan(numeric)
    count = observed.sum(dim=0)
    mean = torch.nansum(numeric, dim=0) / count
    centred = torch.where(observed, numeric - mean, torch.zeros_like(numeric))
    std = (centred.pow(2).sum(dim=0) / (count - 1).clamp_min(1)).sqrt()
    return torch.nanquantile(numeric, 0.5, dim=0), mean, torch.where(std > 0, std, 1.0)


def test_fit_equals_the_whole_matrix_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    for rows, columns in ((1, 3), (2, 1), (1000, 7), (4097, 33)):
        x = torch.randn(rows, columns, generator=g) * 10 + 3
        x[torch.rand(rows, columns, generator=g) < 0.2] = float("nan")
        x[0] = torch.arange(columns, dtype=torch.float32)  # every column observed somewhere
        layer = TabularInput(columns)
        before = x.clone()
        layer.fit(x)
        fill, mean, std = _whole_matrix(x)
        assert torch.equal(x.nan_to_num(), before.nan_to_num())  # the input is not touched
        assert torch.equal(layer.fill, fill.to(layer.fill.dtype))
        torch.testing.assert_close(layer.shift, mean.float(), rtol=1e-6, atol=0)
        torch.testing.assert_close(layer.scale, std.float(), rtol=1e-6, atol=0)


def test_column_statistics_exact_values() -> None:
    nan = float("nan")
    assert column_statistics(torch.tensor([1.0, nan, 3.0, 8.0])) == (3.0, 4.0, 13.0**0.5)
    assert column_statistics(torch.tensor([5.0, 5.0])) == (5.0, 5.0, 1.0)  # no spread: scale 1
    assert column_statistics(torch.tensor([2.0, 4.0])) == (3.0, 3.0, 2.0**0.5)  # even: midpoint
    assert column_statistics(torch.tensor([nan, nan])) is None
