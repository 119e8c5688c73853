import numpy as np
import pandas as pd
import pytest
import torch

from softzoo import datasets
from softzoo.data import (
    InMemoryBatchLoader,
    SyntheticDataModule,
    TabularDataModule,
    UCISplitDataModule,
    read_table,
    true_scale,
)


# ---- the in-memory loader ------------------------------------------------------------
def test_loader_batches_and_length() -> None:
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10.0)
    loader = InMemoryBatchLoader(x, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    assert len(InMemoryBatchLoader(x, y, batch_size=4, drop_last=True)) == 2


def test_loader_shuffles_per_epoch_reproducibly() -> None:
    y = torch.arange(100.0)
    loader = InMemoryBatchLoader(y, batch_size=100, shuffle=True, seed=3)
    first = next(iter(loader))[0]
    again = next(iter(loader))[0]
    loader.sampler.set_epoch(1)
    second = next(iter(loader))[0]
    assert torch.equal(first, again) and not torch.equal(first, second)
    assert torch.equal(first.sort().values, y) and torch.equal(second.sort().values, y)


def test_loader_ddp_shards() -> None:
    y = torch.arange(11.0)
    train = [
        torch.cat(
            [b[0] for b in InMemoryBatchLoader(y, batch_size=2, shuffle=True, rank=r, world_size=2)]
        )
        for r in (0, 1)
    ]
    assert len(train[0]) == len(train[1]) == 5
    assert not set(train[0].tolist()) & set(train[1].tolist())
    evals = [
        torch.cat([b[0] for b in InMemoryBatchLoader(y, batch_size=2, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert torch.equal(torch.cat(evals), y)


def test_loader_errors() -> None:
    with pytest.raises(ValueError, match="tensors differ in length"):
        InMemoryBatchLoader(torch.zeros(3), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        InMemoryBatchLoader(torch.zeros(3), batch_size=0)


def test_loader_is_what_lightning_expects() -> None:
    loader = InMemoryBatchLoader(torch.zeros(3), batch_size=2)
    assert loader.batch_sampler is None and callable(loader.sampler.set_epoch)


# ---- bundled data sets ---------------------------------------------------------------
EXPECTED = {
    "concrete": (1030, 8),
    "energy": (768, 8),
    "kin8nm": (8192, 8),
    "naval-propulsion-plant": (11934, 16),
    "power-plant": (9568, 4),
    "protein-tertiary-structure": (45730, 9),
    "randhie": (20190, 9),
    "wine-quality-red": (1599, 11),
    "yacht": (308, 6),
}


def test_list_datasets() -> None:
    assert datasets.list_datasets() == sorted([*EXPECTED, "penguins"])


def test_penguins_is_a_real_table_with_text_and_gaps() -> None:
    frame = datasets.load_frame("penguins")
    assert frame.shape == (344, 8) and int(frame.isna().sum().sum()) == 19
    assert datasets.info("penguins").unit == "g" and "CC0" in datasets.info("penguins").source
    with pytest.raises(ValueError, match=r"has text columns \(species, island, sex\)"):
        datasets.load("penguins")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_dataset(name: str) -> None:
    ds = datasets.load(name)
    assert ds.features.shape == EXPECTED[name] and ds.target.shape == (EXPECTED[name][0],)
    assert len(ds.feature_names) == ds.features.shape[1] and ds.target_name not in ds.feature_names
    assert np.isfinite(ds.features).all() and ds.description
    assert any(text in ds.source for text in ("CC BY", "DELVE", "public domain"))


def test_concrete_first_row_is_the_published_one() -> None:
    ds = datasets.load("concrete")
    assert ds.features[0].tolist() == [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0]
    assert ds.target[0] == 79.99


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'concret'\. Did you mean 'concrete'"):
        datasets.load("concret")


def test_attribution_ships_with_the_data() -> None:
    from importlib import resources

    text = resources.files("softzoo.datasets").joinpath("files", "ATTRIBUTION.md").read_text()
    assert all(name in text for name in EXPECTED) and "non-commercial" in text


def test_randhie_is_a_real_over_dispersed_count_target() -> None:
    y = datasets.load("randhie").target
    assert (y >= 0).all() and (y == np.round(y)).all() and y.var() > 2 * y.mean()


# ---- tabular files --------------------------------------------------------------------
#: The numeric columns of the `table` fixture (its "city" column holds text).
NUMERIC = ["a", "b"]


@pytest.fixture
def table(tmp_path):
    frame = pd.DataFrame(
        {
            "a": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "b": range(10),
            "city": list("xyzxyzxyzx"),
            "price": np.arange(1.0, 11),
        }
    )
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    return csv, frame


def test_csv_and_parquet_give_the_same_arrays(table, tmp_path) -> None:
    csv, frame = table
    parquet = tmp_path / "data.parquet"
    frame.to_parquet(parquet)
    a = TabularDataModule(path=str(csv), target="price", features=["a", "b"]).arrays
    b = TabularDataModule(path=str(parquet), target="price", features=["a", "b"]).arrays
    assert a.feature_names == b.feature_names == ("a", "b")
    np.testing.assert_array_equal(a.features, b.features)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_text_column_is_a_category_never_left_out(table, tmp_path, suffix) -> None:
    frame = table[1]
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    arrays = TabularDataModule(path=str(path), target="price", seed=3).arrays
    assert arrays.feature_names == ("a", "b", "city")
    roles = {r["name"]: r["role"] for r in arrays.roles}
    assert roles == {"a": "numeric", "b": "numeric", "city": "categorical", "price": "target"}


def test_fraction_split_is_a_seeded_partition(table) -> None:
    def split() -> dict:
        options = {"features": NUMERIC, "val_fraction": 0.2, "test_fraction": 0.3, "seed": 1}
        return TabularDataModule(path=str(table[0]), target="price", **options).split_indices

    parts = split()
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(10))
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (5, 2, 3)
    again = split()
    assert all(np.array_equal(parts[k], again[k]) for k in parts)


def test_index_files_split(table, tmp_path) -> None:
    for split, rows in {"train": [0, 1, 2, 3, 4, 5], "val": [6, 7], "test": [8, 9]}.items():
        (tmp_path / f"{split}.txt").write_text("\n".join(map(str, rows)))
    files = {s: str(tmp_path / f"{s}.txt") for s in ("train", "val", "test")}
    dm = TabularDataModule(path=str(table[0]), target="price", features=NUMERIC, index_files=files)
    assert dm.tensors("test")[1].tolist() == [9.0, 10.0]
    (tmp_path / "val.txt").write_text("5\n6")
    with pytest.raises(ValueError, match="index files overlap"):
        _ = TabularDataModule(
            path=str(table[0]), target="price", features=NUMERIC, index_files=files
        ).split_indices
    (tmp_path / "val.txt").write_text("60")
    with pytest.raises(ValueError, match=r"has rows outside 0\.\.9"):
        _ = TabularDataModule(
            path=str(table[0]), target="price", features=NUMERIC, index_files=files
        ).arrays


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (None, {}, r"data file '.*missing.csv' does not exist"),
        ("", {}, r"data file '.*' is empty"),
        ("a,b,price\n", {}, "has a header but no data rows"),
        (
            "a,b,price\n1,2,3\n",
            {"target": "cost"},
            r"target column 'cost' not found in .* Its columns are: a, b, price",
        ),
        ("a,b,price\n1,2,3\n", {"features": ["a", "c"]}, r"feature column 'c' not found"),
        (
            "a,b,price\n" + "".join(f"{i},name{i},{i}\n" for i in range(30)),
            {},
            r"text column 'b' in .* looks like an identifier \(30 distinct values in 30 rows\)",
        ),
        (
            "a,b,price\n1,2,3\n",
            {"missing": "drop"},
            r"missing must be one of \('impute', 'error'\)",
        ),
        (
            "a,b,price\n1,2,3\n2,3,4\n3,x,5\n",
            {},
            r"feature column 'b' in .* is numeric except for 1 cell\(s\): 'x' \(row 2\): fix those",
        ),
        (
            'a,price\n1,3\n2,"1,200"\n3,"2,400"\n',
            {},
            r"target column 'price' .* thousands separators: remove them",
        ),
        ("a,price\n1,x\n2,y\n", {}, r"target column 'price' .* the target must be a number"),
        ("a;b;price\n1;2;3\n", {}, r"looks semicolon-separated, and softzoo reads comma-sep"),
        ("a\tb\tprice\n1\t2\t3\n", {}, r"looks tab-separated"),
        ("a,a,price\n1,2,3\n", {}, r"names 'a' twice \(columns 1 and 2\): rename one"),
        (",a,price\n0,2,3\n", {}, r"column 1 of the header .* has no name"),
        (
            "a,b,price\n1,2,3\n1,1e300,4\n",
            {},
            r"feature 'b' has 1 value\(s\) too large for float32",
        ),
        (
            "a,b,price\n1,2,3\n1,2,-1e39\n",
            {},
            r"target 'price' has 1 value\(s\) too large for float32",
        ),
        (
            "a,b,price\n1,2,3\n1,,4\n",
            {"missing": "error"},
            r"feature 'b' has 1 missing value\(s\) \(first at row 1\) and missing='error'",
        ),
        (
            "a,b,price\n1,x,3\n1,,4\n",
            {"missing": "error"},
            r"feature 'b' has 1 missing value\(s\) \(first at row 1\) and missing='error'",
        ),
        ("a,b,price\n1,2,3\n1,inf,4\n", {}, r"feature 'b' has 1 infinite value\(s\)"),
        (
            "a,b,price\n1,2,3\n1,2,\n",
            {"missing": "error"},
            r"target 'price' has 1 missing value\(s\) \(first at row 1\)",
        ),
        (
            "a,b,price\n1,2,3\n",
            {"features": ["a", "price"]},
            "the target 'price' is also listed as a feature",
        ),
        ("price\n3\n", {}, "has no feature columns besides the target 'price'"),
    ],
)
def test_bad_tables_get_one_clear_message(tmp_path, content, kwargs, message) -> None:
    path = tmp_path / ("missing.csv" if content is None else "data.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        _ = TabularDataModule(path=str(path), **{"target": "price", **kwargs}).arrays


def test_header_rule_strips_spaces_and_the_byte_order_mark(tmp_path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffa, b ,price\n1,2,3\n2,3,4\n".encode())
    arrays = TabularDataModule(path=str(path), target="price").arrays
    assert arrays.feature_names == ("a", "b")


def test_integers_beyond_int64_are_numbers_not_dropped(tmp_path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,price\n1,99999999999999999999999,3\n2,5,4\n")
    arrays = TabularDataModule(path=str(path), target="price").arrays
    assert arrays.feature_names == ("a", "b") and arrays.features[0, 1] == 1e23


def test_bad_module_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="exactly one of path"):
        TabularDataModule()
    with pytest.raises(ValueError, match="target is required"):
        TabularDataModule(path="x.csv")
    with pytest.raises(ValueError, match="leaves no training rows"):
        TabularDataModule(dataset="yacht", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"unsupported type '\.xlsx'"):
        (tmp_path / "x.xlsx").write_text("")
        read_table(tmp_path / "x.xlsx")


def test_a_batch_larger_than_the_training_rows_is_one_short_batch(table, capsys) -> None:
    dm = TabularDataModule(path=str(table[0]), target="price", features=NUMERIC, batch_size=64)
    batches = [b for step in dm.train_dataloader() for b in step]
    assert [len(y) for _, y in batches] == [7]
    assert capsys.readouterr().err == (
        "softzoo: batch_size 64 is larger than the 7 training rows per process: each epoch "
        "is one batch of 7 rows\n"
    )


def test_predict_file_needs_the_feature_columns(table, tmp_path) -> None:
    other = tmp_path / "new.csv"
    other.write_text("a\n1\n")
    dm = TabularDataModule(
        path=str(table[0]), target="price", features=NUMERIC, predict_path=str(other)
    )
    with pytest.raises(
        ValueError, match=r"feature column 'b' not found in predict file '.*new.csv'"
    ):
        dm.predict_dataloader()


# ---- synthetic and UCI ----------------------------------------------------------------
def test_synthetic_ground_truth() -> None:
    arrays = SyntheticDataModule(n=20000, seed=0).arrays
    x = arrays.features
    residual = arrays.target - (np.sin(2 * x[:, 0]) + 0.5 * x[:, 0])
    z = residual / true_scale(x)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_uci_split_module(uci_root) -> None:
    dm = UCISplitDataModule(str(uci_root), "concrete", split=2)
    train = np.loadtxt(uci_root / "concrete/index_train_2.txt", dtype=int)
    test = np.loadtxt(uci_root / "concrete/index_test_2.txt", dtype=int)
    assert dm.split_indices["train"].tolist() == sorted(train.tolist())
    assert dm.split_indices["test"].tolist() == test.tolist() and len(dm.split_indices["val"]) == 0
    assert dm.n_features == 8
    with pytest.raises(ValueError, match=r"split must lie in 0\.\.19"):
        UCISplitDataModule(str(uci_root), "concrete", split=20)


def test_uci_missing_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="UCI data set 'concrete' not found"):
        UCISplitDataModule(str(tmp_path), "concrete")


def test_parquet_read_a_column_at_a_time_gives_what_the_csv_gives(tmp_path) -> None:
    from softzoo.data.files import ParquetSource

    frame = pd.DataFrame(
        {
            " a ": [1.0, None, 3.0, 4.5] * 10,
            "t": ["x", None, "y", "x"] * 10,
            "y": [1.0, 2.0, 3.0, 4.0] * 10,
        },
        index=pd.Index(range(100, 140), name="id"),  # stored in the file, not a column
    )
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    csv, parquet = (
        TabularDataModule(path=str(tmp_path / f"t.{e}"), target="y") for e in ("csv", "parquet")
    )
    assert isinstance(parquet._frame(), ParquetSource)
    assert parquet.arrays.feature_names == csv.arrays.feature_names == ("a", "t")
    assert parquet.arrays.features.dtype == np.float32
    np.testing.assert_array_equal(parquet.arrays.features, csv.arrays.features)
    assert parquet.arrays.roles == csv.arrays.roles
    assert parquet.arrays.missing_indicators == ("a",)
