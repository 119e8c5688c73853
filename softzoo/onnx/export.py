"""Export a softzoo module to one self-contained ONNX file, with metadata inside."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from softzoo import __version__
from softzoo._io import atomic_write, check_writable
from softzoo.onnx.lowering import translation_table

__all__ = ["INPUT_NAME", "export", "module_metadata", "read_metadata", "write_metadata"]

INPUT_NAME = "features"


def _activations(module: nn.Module) -> list[dict[str, Any]]:
    return [
        {"name": "softplus", "beta": layer.beta, "threshold": layer.threshold}
        if isinstance(layer, nn.Softplus)
        else {"name": type(layer).__name__.lower()}
        for layer in module.body.activation_layers
    ]


def module_metadata(module: nn.Module, model_name: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` that describe a SoftRegressor's graph to any runtime."""
    family = module.family
    feature_names = module.feature_names
    meta = {
        "softzoo_version": __version__,
        "family": family.name,
        "family_options": json.dumps(family.options()),
        "param_names": json.dumps(list(family.param_names)),
        "positive_params": json.dumps({p.name: p.lower for p in family.params if p.positive}),
        "feature_names": json.dumps(feature_names),
        "target_name": str(module.hparams.get("target_name", "y")),
        "activations": json.dumps(_activations(module)),
        "floor": repr(float(module.hparams.get("floor", 1e-6))),
        "input_schema": json.dumps(
            {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", len(feature_names)]}
        ),
        "outputs": json.dumps(
            [{"name": n, "dtype": "float32", "shape": ["batch"]} for n in family.param_names]
        ),
    }
    if model_name:
        meta["model_name"] = model_name
    return meta


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (weights are not loaded)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ValueError(f"ONNX file {str(path)!r} does not exist") from None
    except Exception as err:  # protobuf raises its own DecodeError on truncated files
        raise ValueError(
            f"{str(path)!r} is not a readable ONNX file ({type(err).__name__}: {err})"
        ) from None
    return {p.key: p.value for p in model.metadata_props}


def _set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    current = {p.key: p.value for p in model.metadata_props} | meta
    del model.metadata_props[:]
    for key in sorted(current):
        model.metadata_props.add(key=key, value=current[key])


def write_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Add or replace metadata entries of an ONNX file, atomically."""
    read_metadata(path)
    model = onnx.load(str(path))
    _set_metadata(model, meta)
    atomic_write(path, lambda tmp: onnx.save_model(model, str(tmp)))


def _strip_exporter_traces(model: onnx.ModelProto) -> None:
    """Drop per-node debug metadata (stack traces with local paths), so the file is small
    and the same module always gives the same bytes."""
    for node in model.graph.node:
        del node.metadata_props[:]
    for function in model.functions:
        for node in function.node:
            del node.metadata_props[:]
    del model.metadata_props[:]


def export(
    module: nn.Module,
    path: str | Path,
    *,
    softplus: str = "exact",
    model_name: str | None = None,
    opset_version: int = 18,
) -> Path:
    """Export a SoftRegressor to ``path`` as one ONNX file.

    The graph takes RAW features (input ``"features"``, float32, shape (batch, d), the batch
    dimension dynamic) and returns the family's parameters in original units, one output
    per parameter, floors included; feature scaling and target unscaling are inside.
    ``softplus="exact"`` lowers Softplus to the faster exact form of
    :mod:`softzoo.onnx.lowering`; ``"plain"`` keeps onnxruntime's Softplus op.

    Example:
        >>> import tempfile, torch
        >>> from softzoo.models import SoftRegressor
        >>> model = SoftRegressor(3, hidden=[8])
        >>> path = export(model, tempfile.mkdtemp() + "/m.onnx")
        >>> read_metadata(path)["param_names"]
        '["loc", "scale"]'
    """
    path = check_writable(path)
    table = translation_table(softplus)
    module = module.eval()
    example = torch.zeros(2, module.in_features)
    with _quiet_exporter():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(module.family.param_names),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            custom_translation_table=table,
            opset_version=opset_version,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    _strip_exporter_traces(model)
    model.producer_name, model.producer_version = "softzoo", __version__
    model.doc_string = f"softzoo {module.family.name} model; see metadata_props"
    _set_metadata(model, module_metadata(module, model_name) | {"softplus_lowering": softplus})
    onnx.checker.check_model(model)
    return atomic_write(path, lambda tmp: onnx.save_model(model, str(tmp)))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (e.g. about torchvision ops)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
