"""A Parquet table shared out by row groups (``shard_row_groups``): each process holds only
its share, and the statistics it reduces across the processes equal one process's."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from softzoo.data import InMemoryBatchLoader, TabularDataModule
from softzoo.data.files import ParquetSource
from softzoo.data.shards import Ranks, median_across, shard_groups, statistics_across
from softzoo.data.synthetic import synthetic_table
from softzoo.nn import TabularInput
from softzoo.nn.tabular import column_statistics

ROW_GROUP = 400


def _table(directory: Path) -> pd.DataFrame:
    """The synthetic table (text columns, gaps, one row without a target) as two Parquet
    files of 400-row groups: 8 row groups."""
    frame, _ = synthetic_table(3000, seed=1)
    frame.loc[5, "y"] = np.nan
    directory.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
        part = frame.iloc[rows]
        part.to_parquet(directory / f"part-{i}.parquet", row_group_size=ROW_GROUP, index=False)
    return frame


# ---- exact reductions --------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001, 4096])
def test_median_across_is_torch_quantile_exactly(n: int) -> None:
    rng = np.random.default_rng(n)
    for values in (
        rng.standard_normal(n) * 1e-3,
        np.round(rng.standard_normal(n) * 3),  # many ties
        np.where(rng.random(n) < 0.3, np.nan, rng.standard_normal(n) * 1e6 - 5e5),
    ):
        observed = torch.tensor(values)[~torch.isnan(torch.tensor(values))]
        expected = float(torch.quantile(observed, 0.5)) if len(observed) else float("nan")
        assert median_across(values, Ranks()) == pytest.approx(expected, rel=0, abs=0, nan_ok=True)


def test_statistics_of_one_group_are_column_statistics_bit_for_bit() -> None:
    values = np.random.default_rng(0).standard_normal(5000) * 7 + 2
    values[::9] = np.nan
    assert statistics_across(values, np.zeros(5000, int), Ranks()) == column_statistics(
        torch.tensor(values)
    )
    assert statistics_across(np.array([np.nan]), np.zeros(1, int), Ranks()) is None


def test_shard_groups() -> None:
    assert shard_groups(8, 0, 2) == [0, 2, 4, 6] and shard_groups(8, 1, 2) == [1, 3, 5, 7]
    assert shard_groups(3, 0, 1) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"1 row group\(s\) for 2 processes.*row_group_size"):
        shard_groups(1, 0, 2)


def test_loader_epoch_rows_draws_that_many_rows_each_epoch() -> None:
    y = torch.arange(10.0)
    loader = InMemoryBatchLoader(y, batch_size=3, shuffle=True, epoch_rows=7)
    first = torch.cat([b[0] for b in loader])
    loader.sampler.set_epoch(1)
    second = torch.cat([b[0] for b in loader])
    assert len(loader) == 3 and len(first) == len(second) == 7
    assert len(set(first.tolist())) == 7 and set(first.tolist()) != set(second.tolist())


# ---- a directory of Parquet files ----------------------------------------------------------
def test_parquet_directory_reads_as_one_table(tmp_path) -> None:
    frame = _table(tmp_path / "t")
    source = ParquetSource(tmp_path / "t")
    assert len(source) == len(frame) and list(source.columns) == list(frame.columns)
    assert source.group_rows == [400, 400, 400, 300] * 2
    pd.testing.assert_series_equal(source["x1"], frame["x1"].reset_index(drop=True))
    second = source.select([5])["shop"].to_numpy()
    assert list(second) == list(frame["shop"].iloc[1500 + 400 : 1500 + 800])


def test_parquet_directory_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no Parquet files"):
        ParquetSource(tmp_path / "empty")
    (tmp_path / "mixed").mkdir()
    pd.DataFrame({"a": [1.0], "y": [2.0]}).to_parquet(tmp_path / "mixed/1.parquet", index=False)
    pd.DataFrame({"b": [1.0], "y": [2.0]}).to_parquet(tmp_path / "mixed/2.parquet", index=False)
    with pytest.raises(ValueError, match=r"2.parquet in .* has the columns \[.b., .y.\]"):
        ParquetSource(tmp_path / "mixed")
    with pytest.raises(ValueError, match="shard_row_groups reads Parquet row groups"):
        TabularDataModule(path="t.csv", target="y", shard_row_groups=True)


def test_row_groups_must_agree_on_a_column_role(tmp_path) -> None:
    (tmp_path / "t").mkdir()
    numbers = pd.DataFrame({"code": np.arange(30.0), "y": np.arange(1.0, 31.0)})
    words = numbers.assign(code=[f"c{i % 3}" for i in range(30)])
    numbers.to_parquet(tmp_path / "t/1.parquet", index=False)
    words.to_parquet(tmp_path / "t/2.parquet", index=False)
    data = TabularDataModule(path=str(tmp_path / "t"), target="y", shard_row_groups=True)
    with pytest.raises(ValueError, match=r"'code' .* numeric in row group 0 and categorical in"):
        _ = data.n_features


# ---- two processes ----------------------------------------------------------------------
_RANK_SCRIPT = """
import sys, types, torch
from softzoo.data import TabularDataModule
from softzoo.data.files import ParquetSource
rank, world, path, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if world > 1:  # the processes run together from the start, as under torchrun
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
read, select = [], ParquetSource.select
ParquetSource.select = lambda self, groups: read.extend(groups) or select(self, groups)
data = TabularDataModule(path=path, target="y", shard_row_groups=True)
data.n_features  # the layout, as the CLI reads it to build the model
layout_groups = list(read)
data.trainer = types.SimpleNamespace(global_rank=rank, world_size=world, is_global_zero=rank == 0)
data.setup("fit")
torch.save(
    {"statistics": data.training_statistics, "features": data.arrays.features,
     "splits": data.split_indices, "categories": data.categories,
     "indicators": data.missing_indicators, "train_rows": data.train_dataloader().rows,
     "layout_groups": layout_groups, "share_groups": read[len(layout_groups):]},
    out,
)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks(tmp_path: Path, table: Path, world: int) -> list[dict]:
    script = tmp_path / "rank.py"
    script.write_text(textwrap.dedent(_RANK_SCRIPT))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    outs = [tmp_path / f"rank{r}of{world}.pt" for r in range(world)]
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(world), str(table), str(outs[r])],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()[-3000:]
    return [torch.load(o, weights_only=False) for o in outs]


# two gloo processes and one reference process (~30 s on 2 cores)
@pytest.mark.slow
def test_two_processes_hold_their_share_and_reduce_one_process_statistics(tmp_path) -> None:
    frame = _table(tmp_path / "t")
    (one,) = _ranks(tmp_path, tmp_path / "t", 1)
    ranks = _ranks(tmp_path, tmp_path / "t", 2)

    # the statistics do not depend on how many processes share the table: bit for bit
    for rank in ranks:
        assert rank["statistics"].fill == one["statistics"].fill
        assert rank["statistics"].shift == one["statistics"].shift
        assert rank["statistics"].scale == one["statistics"].scale
        assert torch.equal(rank["statistics"].target, one["statistics"].target)
        assert rank["categories"] == one["categories"] and rank["indicators"] == one["indicators"]

    # ... and they are the statistics of the whole table in one process, in memory
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole, index=False)
    memory = TabularDataModule(path=str(whole), target="y")
    assert one["categories"] == memory.categories
    assert one["indicators"] == memory.missing_indicators == ["x1", "income"]
    x, y = memory.tensors("train")
    layer = TabularInput(2)
    layer.fit(x)
    assert torch.equal(layer.fill, torch.tensor(one["statistics"].fill, dtype=torch.float32))
    for name in ("shift", "scale"):
        expected = torch.tensor(getattr(one["statistics"], name), dtype=torch.float32)
        torch.testing.assert_close(getattr(layer, name), expected, rtol=1e-6, atol=0)
    assert torch.equal(one["statistics"].target, y)

    # each process reads only its own row groups, for the layout and for its share
    assert one["layout_groups"] == one["share_groups"] == list(range(8))
    for r, rank in enumerate(ranks):
        assert rank["layout_groups"] == rank["share_groups"] == list(range(r, 8, 2))
    # ... and holds the rows of those row groups only: 0, 2, 4, 6 and 1, 3, 5, 7
    kept = memory.arrays.features  # every row with a target, in file order
    group = np.repeat(np.arange(8), [400, 400, 400, 300] * 2)[frame["y"].notna().to_numpy()]
    for r, rank in enumerate(ranks):
        mine = np.isin(group, [g for g in range(8) if g % 2 == r])
        np.testing.assert_array_equal(rank["features"], kept[mine])
        assert rank["features"].nbytes == mine.sum() * 4 * 4 < kept.nbytes * 0.55
    assert sum(len(rank["splits"]["train"]) for rank in ranks) == len(y)
    # every process takes as many steps: the smaller share's training rows
    smallest = min(len(rank["splits"]["train"]) for rank in ranks)
    assert [rank["train_rows"] for rank in ranks] == [smallest, smallest]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_softzoo_fit_and_test_on_two_processes_with_row_group_shards(tmp_path, launcher) -> None:
    frame = _table(tmp_path / "t")
    args = [
        "--data.path",
        str(tmp_path / "t"),
        "--data.target",
        "y",
        "--data.shard_row_groups",
        "true",
        "--model.family",
        "gamma",
        "--trainer.max_epochs",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--checkpoint.dirpath",
        str(tmp_path / "ckpt"),
    ]

    def softzoo(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "softzoo.cli", *extra]
        if launcher == "torchrun":  # every process runs from the start
            port = f"--master_port={_free_port()}"
            command[1:1] = ["-m", "torch.distributed.run", "--nproc_per_node=2", port]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    fit = softzoo("fit", *args)
    assert fit.returncode == 0, fit.stderr[-3000:]
    state = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)["state_dict"]
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole, index=False)
    x, _ = TabularDataModule(path=str(whole), target="y").tensors("train")
    layer = TabularInput(2)
    layer.fit(x)  # the model fitted the statistics of all training rows, not its share's
    assert torch.equal(state["inputs.fill"], layer.fill)
    torch.testing.assert_close(state["inputs.shift"], layer.shift, rtol=1e-6, atol=0)
    test = softzoo("test", *args, "--ckpt_path", str(tmp_path / "ckpt/last.ckpt"))
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test_nll" in test.stdout


def test_outside_a_trainer_one_process_reads_every_row_group(tmp_path) -> None:
    frame = _table(tmp_path / "t")
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    sharded = TabularDataModule(path=str(tmp_path / "t"), target="y", shard_row_groups=True)
    whole = TabularDataModule(path=str(tmp_path / "whole.parquet"), target="y")
    for split in ("train", "val", "test"):  # e.g. softzoo report, or a script
        x, y = sharded.tensors(split)
        expected_x, expected_y = whole.tensors(split)
        assert torch.equal(x.nan_to_num(7.5), expected_x.nan_to_num(7.5))
        assert torch.equal(y, expected_y)
