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
from softzoo._codes import FIRST_CODE, MISSING_CODE, UNSEEN_CODE
from softzoo._io import atomic_write, check_writable
from softzoo.families import Mixture
from softzoo.onnx.lowering import translation_table

__all__ = [
    "EXPOSURE_INPUT",
    "INPUT_NAME",
    "categorical_inputs",
    "export",
    "input_columns",
    "module_metadata",
    "output_names",
    "read_metadata",
    "write_metadata",
]

INPUT_NAME = "features"
#: The graph input of each row's exposure, for a model trained with an exposure column.
EXPOSURE_INPUT = "exposure"


def _activations(module: nn.Module) -> list[dict[str, Any]]:
    return [
        {"name": "softplus", "beta": layer.beta, "threshold": layer.threshold}
        if isinstance(layer, nn.Softplus)
        else {"name": type(layer).__name__.lower()}
        for layer in module.body.activation_layers
    ]


def output_names(module: nn.Module) -> list[str]:
    """The exported graph's outputs: the family's parameters, the predictive ``mean`` (a
    parameter already, for the negative binomial and positive families), ``prob_zero``
    (P(y = 0)) for the families with a point mass at 0, and, where the family's interval
    is closed-form (Gaussian, log-normal), ``lower_NN`` and ``upper_NN`` of the model's
    central interval (NN: its level in percent)."""
    zero = ["prob_zero"] if module.family.zero_mass else []
    if isinstance(module.family, Mixture):  # members' parameters (batch, members), mixture
        names = [f"member_{n}" for n in module.family.param_names] + ["mean"]
        return names + (["variance"] if module.family.probabilistic else []) + zero
    names = list(module.family.param_names)
    names += ([] if "mean" in names else ["mean"]) + zero
    if module.family.closed_form_interval:
        tag = f"{round(module.hparams.interval_level * 100):d}"
        names += [f"lower_{tag}", f"upper_{tag}"]
    return names


def categorical_inputs(module: nn.Module) -> dict[str, str]:
    """The graph input of each categorical column: the column's own name, or, where that
    is a name the graph already has (``features`` or an output such as ``mean``),
    ``column:NAME`` (metadata ``input_columns`` records it as the column's ``input``)."""
    taken = {INPUT_NAME, EXPOSURE_INPUT, *output_names(module)}
    names = {}
    for column in module.categories:
        name = column
        while name in taken:
            name = f"column:{name}"
        taken.add(name)
        names[column] = name
    return names


def _shape(module: nn.Module, output: str) -> list[Any]:
    members = output.startswith("member_")
    return ["batch", module.family.members] if members else ["batch"]


def _calibration(module: nn.Module) -> dict[str, Any]:
    """The calibration map as a runtime needs it: intervals at ``level`` (the calibrated
    level under the "level" method; the scale factor is inside the graph)."""
    method = getattr(module, "calibration_method", None)
    entry: dict[str, Any] = {"method": method or "none", "level": module.effective_level}
    if method == "scale":
        entry["scale_factor"] = float(module.calibration_scale)
    return entry


def input_columns(module: nn.Module) -> list[dict[str, Any]]:
    """Every raw input column of the graph: name, role, dtype, graph input, number of
    categories, and how its missing cells are handled."""
    categories = module.categories
    graph_inputs = categorical_inputs(module)
    roles = {r["name"]: r for r in module.hparams.get("column_roles") or []}
    indicators = set(module.hparams.get("missing_indicators") or [])
    columns = []
    for position, name in enumerate(module.numeric_names):
        missing = "median" + (" + indicator" if name in indicators else "")
        columns.append(
            {
                "name": name,
                "role": "numeric",
                "dtype": "float32",
                "input": INPUT_NAME,
                "position": position,
                "missing": f"NaN → {missing}",
            }
        )
    for name, vocabulary in categories.items():
        source = roles.get(name, {}).get("dtype", "text")
        columns.append(
            {
                "name": name,
                "role": "categorical",
                "dtype": "string",
                "input": graph_inputs[name],
                "n_categories": len(vocabulary),
                "source_dtype": source,
                "missing": "empty string → missing code; an unseen category → unseen code",
            }
        )
    return columns


def _graph_inputs(module: nn.Module) -> list[dict[str, Any]]:
    inputs = []
    if module.inputs.n_numeric:
        shape = ["batch", module.inputs.n_numeric]
        inputs.append({"name": INPUT_NAME, "dtype": "float32", "shape": shape})
    strings = categorical_inputs(module).values()
    inputs += [{"name": c, "dtype": "string", "shape": ["batch"]} for c in strings]
    if module.hparams.get("exposure_column"):
        inputs.append({"name": EXPOSURE_INPUT, "dtype": "float32", "shape": ["batch"]})
    return inputs


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
        "input_schema": json.dumps(_graph_inputs(module)),
        "input_columns": json.dumps(input_columns(module)),
        "categories": json.dumps(module.categories),
        "missing_policy": str(module.hparams.get("missing_policy") or "impute"),
        "interval_level": repr(float(module.hparams.interval_level)),
        "calibration": json.dumps(_calibration(module)),
        "outputs": json.dumps(
            [
                {"name": n, "dtype": "float32", "shape": _shape(module, n)}
                for n in output_names(module)
            ]
        ),
    }
    if isinstance(family, Mixture):
        meta["mixture"] = json.dumps({"members": family.members, "weights": "equal"})
    if module.hparams.get("column_roles"):
        meta["column_roles"] = json.dumps(module.hparams.column_roles)
    for key in ("exposure_column", "weight_column"):
        if module.hparams.get(key):
            meta[key] = str(module.hparams[key])
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
    """Drop the exporter's debug metadata (per-node stack traces with local paths, the
    traced module's signature), so the file is small and the same module always gives the
    same bytes."""
    for node in model.graph.node:
        del node.metadata_props[:]
    for function in model.functions:
        for node in function.node:
            del node.metadata_props[:]
    del model.graph.metadata_props[:]  # torch.export's signature of the traced module
    del model.metadata_props[:]


class _Deployed(nn.Module):
    """What a deployed graph computes: the module's parameters, the predictive mean,
    P(y = 0) where the family has a point mass there and, for a closed-form family, the
    central interval ends (see :func:`output_names`)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(
        self, x: torch.Tensor, exposure: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``x``: the module's rows; ``exposure`` (batch,), the graph's own input, joins
        them as the last column (as the module takes it)."""
        if exposure is not None:
            x = torch.cat([x, exposure[:, None]], dim=1)
        params = self.module(x)
        family = self.module.family
        outputs = [*params]
        zero = [family.prob_zero(params)] if family.zero_mass else []
        if isinstance(family, Mixture):
            outputs.append(family.mean(params))
            if family.probabilistic:
                outputs.append(family.variance(params))
            return (*outputs, *zero)
        if "mean" not in family.param_names:
            outputs.append(family.mean(params))
        outputs += zero
        if family.closed_form_interval:
            outputs += list(family.interval(params, self.module.hparams.interval_level))
        return tuple(outputs)


#: Name of the exported torch graph's input when a string front is joined in front of it,
#: and the prefix of every internal name of the joined graph: no column is named so (a
#: column name may be any text, and a string input is named after its column).
_INTERNAL = "softzoo::"
_CODED_INPUT = f"{_INTERNAL}coded_features"


def _category_front(module: nn.Module, opset_version: int, ir_version: int) -> onnx.ModelProto:
    """A graph from the raw inputs (``features`` and one string input per categorical
    column) to the coded row the torch graph takes: ``ai.onnx.ml`` LabelEncoder per column
    (the empty string → MISSING_CODE, an unseen category → UNSEEN_CODE), Cast, Concat."""
    helper, nodes, parts = onnx.helper, [], []
    inputs = []
    if module.inputs.n_numeric:
        shape = ["batch", module.inputs.n_numeric]
        inputs.append(helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, shape))
        parts.append(INPUT_NAME)
    graph_inputs = categorical_inputs(module)
    front, axis_name = f"{_INTERNAL}front/", f"{_INTERNAL}front/axis"
    for j, (name, vocabulary) in enumerate(module.categories.items()):
        name = graph_inputs[name]
        inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.STRING, ["batch"]))
        keys = [*vocabulary, ""]
        values = [FIRST_CODE + i for i in range(len(vocabulary))] + [MISSING_CODE]
        code, number, column = (f"{front}{part}_{j}" for part in ("code", "float", "column"))
        encoder = helper.make_node(
            "LabelEncoder",
            [name],
            [code],
            domain="ai.onnx.ml",
            keys_strings=keys,
            values_int64s=values,
            default_int64=UNSEEN_CODE,
        )
        nodes += [
            encoder,
            helper.make_node("Cast", [code], [number], to=onnx.TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [number, axis_name], [column]),
        ]
        parts.append(column)
    axis = helper.make_tensor(axis_name, onnx.TensorProto.INT64, [1], [1])
    nodes.append(helper.make_node("Concat", parts, [_CODED_INPUT], axis=1))
    output = helper.make_tensor_value_info(
        _CODED_INPUT, onnx.TensorProto.FLOAT, ["batch", module.in_features]
    )
    graph = helper.make_graph(nodes, "softzoo_category_front", inputs, [output], [axis])
    opsets = [helper.make_opsetid("", opset_version), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)


def export(
    module: nn.Module,
    path: str | Path,
    *,
    softplus: str = "exact",
    model_name: str | None = None,
    opset_version: int = 18,
) -> Path:
    """Export a SoftRegressor to ``path`` as one ONNX file.

    The graph takes RAW rows: the numeric columns as input ``"features"`` (float32,
    (batch, n_numeric), NaN where a cell is missing), each categorical column as a
    string input of its own name ((batch,); "" where a cell is missing) and, for a model
    trained with an exposure column, ``"exposure"`` (float32, (batch,), > 0; 1 gives the
    prediction per unit), the batch dimension dynamic. It returns the family's parameters
    in original units, floors included, the predictive mean, P(y = 0) where the family
    has a point mass there and, for Gaussian and log-normal models, the central interval ends
    (:func:`output_names`); imputation, missing indicators, scaling, category codes,
    embeddings and target unscaling are all inside. ``softplus="exact"`` lowers Softplus to
    the faster exact form of :mod:`softzoo.onnx.lowering`; ``"plain"`` keeps
    onnxruntime's Softplus op.

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
    coded = bool(module.categories)
    exposed = bool(module.hparams.get("exposure_column"))
    example = (torch.zeros(2, module.in_features), torch.ones(2))[: 1 + exposed]
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            _Deployed(module),
            example,
            dynamo=True,
            input_names=[_CODED_INPUT if coded else INPUT_NAME, EXPOSURE_INPUT][: 1 + exposed],
            output_names=output_names(module),
            dynamic_shapes=({0: batch}, {0: batch})[: 1 + exposed],
            custom_translation_table=table,
            opset_version=opset_version,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    _strip_exporter_traces(model)
    if coded:
        # the torch graph's internal names (nodes, edges, weights: "cat", "mean", ...) get
        # the internal prefix, so that no column's string input can meet one of them
        model = onnx.compose.add_prefix(
            model, f"{_INTERNAL}body/", rename_inputs=False, rename_outputs=False
        )
        front = _category_front(module, opset_version, model.ir_version)
        model = onnx.compose.merge_models(front, model, io_map=[(_CODED_INPUT, _CODED_INPUT)])
    model.producer_name, model.producer_version = "softzoo", __version__
    model.doc_string = f"softzoo {module.family.name} model; see metadata_props"
    _set_metadata(model, module_metadata(module, model_name) | {"softplus_lowering": softplus})
    onnx.checker.check_model(model, full_check=True)
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
