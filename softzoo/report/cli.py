"""``softzoo report``: the calibration and prediction plots of a checkpoint or a zoo model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from softzoo.data import ArrayDataModule, TabularDataModule, data_module_class
from softzoo.models import SoftRegressor, check_checkpoint, load_checkpoint
from softzoo.report.plots import prepare_output, write_report

__all__ = ["data_module_from_config", "report_main"]

_SPLITS = ("train", "val", "test")


def data_module_from_config(config: dict[str, Any]) -> ArrayDataModule:
    """Rebuild a data module from ``{"class_path": …, "init_args": {…}}`` (a YAML ``data:``
    section) or from the hyper-parameters a checkpoint stores (``_class_path`` + args).
    Only the allow-listed data modules are built (:func:`softzoo.data.data_module_class`):
    a checkpoint is untrusted input, and nothing it names is imported."""
    class_path = config.get("class_path") or config.get("_class_path")
    if "init_args" in config:
        init_args = dict(config["init_args"] or {})
    else:
        init_args = {k: v for k, v in config.items() if not k.startswith("_")}
    cls = data_module_class(class_path)
    return cls(**init_args)


#: The arguments of softzoo's data modules that name files to read.
_FILE_ARGUMENTS = ("path", "predict_path", "index_files", "root")


def _recorded_files(config: dict[str, Any]) -> list[str]:
    args = config.get("init_args", config) or {}
    files = []
    for key in _FILE_ARGUMENTS:
        value = args.get(key)
        files += [str(v) for v in value.values()] if isinstance(value, dict) else []
        files += [str(value)] if isinstance(value, (str, bytes)) else []
    return files


def _with_vocabularies(config: dict[str, Any], model: SoftRegressor) -> dict[str, Any]:
    """The recorded data module's arguments with the model's vocabularies: the table may
    have gained or renamed a category since, and refitting would shift the codes."""
    if not model.categories:
        return config
    if "init_args" in config:
        return {
            **config,
            "init_args": {**(config["init_args"] or {}), "vocabularies": model.categories},
        }
    return {**config, "vocabularies": model.categories}


def _recorded_data(args: argparse.Namespace, model: SoftRegressor) -> tuple[ArrayDataModule, str]:
    """The data module the model was trained with: from the checkpoint or the zoo recipe,
    encoding categories with the model's vocabularies. A checkpoint's recorded files are
    named on stderr before they are read."""
    if args.ckpt_path is not None:
        config = check_checkpoint(args.ckpt_path).get("datamodule_hyper_parameters")
        where = f"checkpoint {args.ckpt_path!r}"
    else:
        from softzoo.zoo import get_model_weights

        weights = get_model_weights(args.model)
        config = weights.card.recipe_config.get("data") if weights and weights.card else None
        where = f"zoo model {args.model!r}"
    if not config:
        raise ValueError(
            f"{where} does not record the data it was trained on; pass --data FILE "
            "(a CSV/Parquet file with the model's feature and target columns)"
        )
    files = _recorded_files(config)
    if args.ckpt_path is not None and files:
        print(
            f"softzoo report: reading the files {where} records: {', '.join(files)}",
            file=sys.stderr,
        )
    return data_module_from_config(_with_vocabularies(config, model)), where


def _rows(args: argparse.Namespace, model: SoftRegressor) -> tuple[Any, Any, str]:
    if args.data:
        data = TabularDataModule(
            path=args.data,
            target=model.hparams.target_name,
            features=model.feature_names,
            vocabularies=model.categories or None,
            val_fraction=0.0,
            test_fraction=0.0,
        )
        x, y = data.tensors("train")
        return x, y, f"file `{args.data}`"
    data, where = _recorded_data(args, model)
    x, y = data.tensors(args.split)
    if len(y) == 0:
        raise ValueError(
            f"the {args.split} split of the data recorded in {where} is empty; "
            "choose another --split or pass --data FILE"
        )
    return x, y, f"{args.split} split of the data recorded in {where}"


def _model(args: argparse.Namespace) -> tuple[SoftRegressor, str]:
    if args.ckpt_path is not None:
        return load_checkpoint(args.ckpt_path), str(args.ckpt_path)
    from softzoo.zoo import get_model

    return get_model(args.model, weights="DEFAULT"), args.model


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="softzoo report",
        description="Write calibration and prediction plots (PNG) and report.md for a "
        "checkpoint or a zoo model, on the test split it was trained with or on --data.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ckpt_path", help="a SoftRegressor checkpoint (.ckpt)")
    which.add_argument("--model", help="a zoo model name (softzoo zoo list)")
    parser.add_argument(
        "--data", default=None, help="a CSV/Parquet file with the model's columns (all rows)"
    )
    parser.add_argument(
        "--split", choices=_SPLITS, default="test", help="split of the recorded data (default test)"
    )
    parser.add_argument("--output", required=True, help="folder for the PNGs and report.md")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    prepare_output(args.output)  # before any work
    model, name = _model(args)
    x, y, source = _rows(args, model)
    files = write_report(model, x, y, args.output, title=args.title or name, source=source)
    for path in files.values():
        print(f"wrote {path}")
    return 0
