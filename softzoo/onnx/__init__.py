"""ONNX export with a fast exact Softplus lowering, metadata inside the file, and parity
certificates under onnxruntime.

Example:
    >>> import tempfile
    >>> from softzoo.models import SoftRegressor
    >>> from softzoo.onnx import check_parity, export
    >>> model = SoftRegressor(4, family="gamma", hidden=[8])
    >>> path = export(model, tempfile.mkdtemp() + "/gamma.onnx")
    >>> report = check_parity(model, path)
    >>> report.passed, report.summary().startswith("parity cpu: PASS")
    (True, True)
"""

from softzoo.onnx.export import (
    INPUT_NAME,
    export,
    input_columns,
    module_metadata,
    output_names,
    read_metadata,
    write_metadata,
)
from softzoo.onnx.lowering import SOFTPLUS_LOWERINGS, softplus_exact
from softzoo.onnx.parity import (
    PROVIDERS,
    ParityReport,
    check_parity,
    export_certified,
    graph_feeds,
    metadata_mismatches,
    parity_inputs,
    session,
)

__all__ = [
    "INPUT_NAME",
    "PROVIDERS",
    "SOFTPLUS_LOWERINGS",
    "ParityReport",
    "check_parity",
    "export",
    "export_certified",
    "graph_feeds",
    "input_columns",
    "metadata_mismatches",
    "module_metadata",
    "output_names",
    "parity_inputs",
    "read_metadata",
    "session",
    "softplus_exact",
    "write_metadata",
]
