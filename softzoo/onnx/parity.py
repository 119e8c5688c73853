"""Certify that onnxruntime computes what the PyTorch module computes.

Inputs: random rows around the training distribution plus adversarial ones: raw zeros,
±1e4 features (all, one at a time, alternating), rows putting first-layer softplus units
exactly at beta·x = threshold (and one float32 step either side), rows that drive the
positive heads far negative, missing numeric cells (NaN: one column, all, scattered), and
for categorical columns every category, the empty string (missing) and a category no
vocabulary holds (unseen). For each output (parameters, mean, interval ends): max absolute
and relative error, and a pass/fail against ``|ort - torch| <= atol + rtol·|torch|`` with
atol = rtol·max(1, max|torch|) (fp32 CPU: rtol 1e-5; CUDA without TF32: rtol 1e-4);
the mean and interval ends of a positive family are compared as logs (an exponential
multiplies float32's error by the exponent); every positive parameter must be finite and
above its lower bound in both runtimes. The file's metadata must describe the module.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from softzoo._codes import FIRST_CODE
from softzoo.nn.embeddings import PiecewiseLinearEncoding
from softzoo.onnx.export import (
    EXPOSURE_INPUT,
    INPUT_NAME,
    _Deployed,
    categorical_inputs,
    export,
    module_metadata,
    output_names,
    read_metadata,
    write_metadata,
)
from softzoo.onnx.lowering import SOFTPLUS_LOWERINGS

__all__ = [
    "PROVIDERS",
    "ParityReport",
    "ProviderParity",
    "check_parity",
    "export_certified",
    "graph_feeds",
    "metadata_mismatches",
    "parity_inputs",
    "session",
]

#: Short name → (onnxruntime provider, provider options, rtol).
PROVIDERS = {
    "cpu": ("CPUExecutionProvider", {}, 1e-5),
    "cuda": ("CUDAExecutionProvider", {"use_tf32": 0}, 1e-4),
}


def session(path: str | Path, provider: str = "cpu", threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session with explicit intra-op threads and no spinning (spinning
    threads slow a PyTorch process that shares the cores)."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDERS)}")
    name, options, _ = PROVIDERS[provider]
    if name not in ort.get_available_providers():
        raise ValueError(
            f"onnxruntime has no {name} here (installed: {ort.get_available_providers()})"
        )
    read_metadata(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=[(name, options)])


@dataclass
class OutputParity:
    name: str
    max_abs_error: float
    max_rel_error: float
    atol: float
    rtol: float
    min_value: float
    lower_bound: float | None
    passed: bool


@dataclass
class ProviderParity:
    provider: str
    rows: int
    outputs: list[OutputParity]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)


@dataclass
class ParityReport:
    """The parity certificate: one entry per provider; ``passed`` only if all pass."""

    onnx_file: str
    providers: list[ProviderParity] = field(default_factory=list)
    #: differences between the file's metadata and the module (empty when they agree)
    metadata_mismatches: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            bool(self.providers)
            and all(p.passed for p in self.providers)
            and not self.metadata_mismatches
        )

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "onnx_file": self.onnx_file,
            "metadata_mismatches": list(self.metadata_mismatches),
            "providers": [asdict(p) | {"passed": p.passed} for p in self.providers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        """One line per provider, e.g. ``parity cpu: PASS on 1289 rows; max rel error …``,
        then one for the metadata."""
        lines = []
        for p in self.providers:
            errors = ", ".join(f"{o.name} {o.max_rel_error:.1e}" for o in p.outputs)
            verdict = "PASS" if p.passed else "FAIL"
            lines.append(f"parity {p.provider}: {verdict} on {p.rows} rows; max rel error {errors}")
        if self.metadata_mismatches:
            lines.append(f"parity metadata: FAIL: {'; '.join(self.metadata_mismatches)}")
        else:
            lines.append("parity metadata: PASS (it describes the module)")
        return "\n".join(lines)


#: Metadata entries that must describe the module exactly (JSON values compare parsed).
_CHECKED_METADATA = (
    "family",
    "exposure_column",
    "family_options",
    "param_names",
    "positive_params",
    "feature_names",
    "target_name",
    "activations",
    "floor",
    "input_schema",
    "input_columns",
    "categories",
    "interval_level",
    "calibration",
    "mixture",
    "outputs",
    "missing_policy",
    "column_roles",
)
_PLAIN_TEXT = {"family", "target_name", "missing_policy", "exposure_column"}


def _parsed(key: str, text: str) -> object:
    if key in _PLAIN_TEXT:
        return text
    if key in ("floor", "interval_level"):
        return float(text)
    return json.loads(text)


def metadata_mismatches(module: nn.Module, onnx_path: str | Path) -> list[str]:
    """Every way the file's metadata differs from what the module says of itself
    (:func:`~softzoo.onnx.module_metadata`): a missing or unparsable entry, another
    family, feature order, floor, …, or a ``softplus_lowering`` the graph does not have."""
    import onnx

    meta = read_metadata(onnx_path)
    expected = module_metadata(module)
    problems = []
    for key in _CHECKED_METADATA:
        if key not in expected:  # e.g. "mixture", for an ensemble only
            if key in meta:
                problems.append(f"{key}: in the file, but the module has none")
            continue
        if key not in meta:
            problems.append(f"{key}: missing")
            continue
        try:
            found = _parsed(key, meta[key])
        except ValueError:
            problems.append(f"{key}: unreadable ({meta[key][:60]!r})")
            continue
        if found != _parsed(key, expected[key]):
            problems.append(f"{key}: file {found!r}, module {_parsed(key, expected[key])!r}")
    lowering = meta.get("softplus_lowering")
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    has_softplus_op = any(node.op_type == "Softplus" for node in graph.node)
    softplus_layers = any(
        layer["name"] == "softplus" for layer in json.loads(expected["activations"])
    )
    if lowering not in SOFTPLUS_LOWERINGS:
        problems.append(f"softplus_lowering: {lowering!r} is not one of {list(SOFTPLUS_LOWERINGS)}")
    elif softplus_layers and has_softplus_op != (lowering == "plain"):
        problems.append(
            f"softplus_lowering: file says {lowering!r}, the graph "
            f"{'has' if has_softplus_op else 'has no'} Softplus op"
        )
    return problems


def _network_of_numeric(module: nn.Module, codes: Tensor, dtype: torch.dtype):
    """The map from standardised numeric features z (1, n_numeric) to the network input,
    the categorical codes held at ``codes``."""
    inputs = copy.deepcopy(module.inputs).to(dtype).eval()

    def network_input(z: Tensor) -> Tensor:
        raw = inputs.shift + inputs.scale * z
        return inputs(torch.cat([raw, codes.to(dtype).expand(len(z), -1)], dim=1))

    return network_input


def _threshold_rows(module: nn.Module, units: int = 8) -> list[np.ndarray]:
    """Standardised numeric rows z that put first-layer softplus units at beta·x =
    threshold: for each of the first ``units`` units, bisection (float64) along the
    direction that raises its pre-activation (so a norm layer before the activation is
    handled too); categorical codes at the first category."""
    body = module.body
    n = module.inputs.n_numeric
    if not n or not isinstance(body.activation_layers[0], nn.Softplus):
        return []
    act = body.activation_layers[0]
    body64 = copy.deepcopy(body).double().eval()
    network = _network_of_numeric(module, _base_codes(module), torch.float64)
    target = act.threshold / act.beta
    members = getattr(module.family, "members", 1)

    def unit(z: Tensor, j: int) -> Tensor:  # an ensemble's unit j is member j % M's
        out = body64.pre_activation(network(z))
        return out[j % members, :, j] if out.dim() == 3 else out[:, j]

    rows = []
    for j in range(min(units, body.hidden[0])):
        row = _root_along_gradient(lambda z, j=j: unit(z, j), n, target)
        if row is not None:
            rows.append(row)
    return rows


def _base_codes(module: nn.Module) -> Tensor:
    return torch.full((1, len(module.categories)), float(FIRST_CODE))


def _root_along_gradient(f, d: int, target: float) -> np.ndarray | None:
    """A z on the ray from 0 along ∇f(0) with f(z) = target (None if there is none)."""
    z = torch.zeros(1, d, dtype=torch.float64, requires_grad=True)
    f(z).sum().backward()
    norm = float(z.grad.norm())
    if norm == 0:
        return None
    direction = z.grad[0] / norm

    def gap(t: float) -> float:
        with torch.no_grad():
            return float(f((t * direction)[None])[0]) - target

    lo, hi = 0.0, 1.0
    while gap(hi) * gap(lo) > 0:
        lo, hi = hi, hi * 2
        if hi > 1e8:
            return None
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) * gap(lo) > 0 else (lo, mid)
    return (hi * direction).numpy()


def _head_negative_rows(module: nn.Module) -> list[np.ndarray]:
    """Standardised numeric rows along the direction that lowers every positive head's raw
    output."""
    n = module.inputs.n_numeric
    positive = [i for i, s in enumerate(module.heads.specs) if s.positive]
    if not n or not positive:
        return []
    z = torch.zeros(1, n, dtype=torch.float32, requires_grad=True)
    network = _network_of_numeric(module, _base_codes(module), torch.float32)
    raw = module.heads.linear(module.body(network(z)))
    raw[..., positive].sum().backward()
    direction = z.grad[0].double()
    if float(direction.norm()) == 0:
        return []
    unit = (-direction / direction.norm()).numpy()
    return [unit * k for k in (10.0, 100.0, 1e3, 1e4)]


def _bin_edge_rows(module: nn.Module, shift: np.ndarray) -> list[np.ndarray]:
    """For a piecewise-linear encoding: rows exactly on every bin edge, and 100 times
    the largest training magnitude of each column on either side (far outside the bins)."""
    encoding = module.inputs.numeric
    if not isinstance(encoding, PiecewiseLinearEncoding):
        return []
    left = encoding.left.double().numpy()
    right = left + encoding.width.double().numpy()
    used = encoding.used.numpy() > 0
    edges = np.concatenate([left, right], axis=1)
    edges = np.where(np.concatenate([used, used], axis=1), edges, shift[:, None])
    extreme = 100 * np.maximum(np.abs(edges).max(axis=1), 1.0)
    return [edges.T, np.stack([extreme, -extreme])]


def _numeric_rows(module: nn.Module, n_random: int, rng: np.random.Generator) -> np.ndarray:
    """Raw numeric rows: random around the training distribution, adversarial, NaN."""
    d = module.inputs.n_numeric
    shift = module.inputs.shift.detach().double().numpy()
    scale = module.inputs.scale.detach().double().numpy()
    standardised = [
        rng.standard_normal((n_random, d)) * rng.choice([0.5, 1, 3], size=(n_random, 1))
    ]
    threshold = _threshold_rows(module)
    standardised += [np.stack(threshold or [np.zeros(d)])]
    standardised += [np.stack(_head_negative_rows(module) or [np.zeros(d)])]
    raw = [shift + scale * z for z in standardised]
    raw.append(np.zeros((1, d)))
    raw.append(np.stack([np.full(d, 1e4), np.full(d, -1e4), np.where(np.arange(d) % 2, 1e4, -1e4)]))
    for sign in (1e4, -1e4):
        raw.append(np.where(np.eye(d) > 0, sign, shift))
    raw += _bin_edge_rows(module, shift)
    # missing cells: one column at a time, all of them, and a random tenth of the cells
    raw.append(np.where(np.eye(d) > 0, np.nan, shift))
    raw.append(np.full((1, d), np.nan))
    scattered = shift + scale * rng.standard_normal((32, d))
    raw.append(np.where(rng.random((32, d)) < 0.1, np.nan, scattered))
    rows = np.concatenate(raw)
    at_threshold = rows[n_random : n_random + len(threshold)]
    nudged = [
        np.nextafter(at_threshold.astype(np.float32), np.float32(s)) for s in (np.inf, -np.inf)
    ]
    return np.concatenate([rows.astype(np.float32), *nudged]).astype(np.float32)


def parity_inputs(module: nn.Module, n_random: int = 1024, seed: int = 0) -> np.ndarray:
    """Rows (float32) of the module's input for the parity check: raw numeric values
    (random, adversarial, NaN) followed by categorical codes (every category, the missing
    and the unseen code, drawn at random per row) and, for a model with an exposure, the
    exposure (the last column)."""
    rng = np.random.default_rng(seed)
    numeric = _numeric_rows(module, n_random, rng)
    sizes = [len(v) + FIRST_CODE for v in module.categories.values()]
    rows = max(len(numeric), 1 if sizes else 0, *sizes)
    if len(numeric) < rows:
        numeric = np.resize(numeric, (rows, numeric.shape[1]))
    # every code of every column appears, in shifting combinations
    codes = [(np.arange(rows) + rng.integers(size)) % size for size in sizes]
    codes = np.stack(codes, axis=1) if codes else np.zeros((rows, 0))
    parts = [numeric, codes]
    if module.hparams.get("exposure_column"):  # 1, and every magnitude from 1e-4 to 1e4
        exposure = 10.0 ** rng.uniform(-4, 4, rows)
        exposure[::7] = 1.0
        parts.append(exposure[:, None])
    return np.concatenate(parts, axis=1).astype(np.float32)


#: The string a parity row feeds for the unseen code: no vocabulary holds it.
UNSEEN_TEXT = "\u2063softzoo-unseen-category"


def graph_feeds(module: nn.Module, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The raw inputs of an exported graph for rows of the module's input: the numeric
    block as ``features`` and, per categorical column, the text of each code (the missing
    code as "", the unseen code as a string no vocabulary holds)."""
    n = module.inputs.n_numeric
    feeds = {INPUT_NAME: np.ascontiguousarray(rows[:, :n])} if n else {}
    graph_inputs = categorical_inputs(module)
    for j, (name, vocabulary) in enumerate(module.categories.items()):
        texts = ["", UNSEEN_TEXT, *vocabulary]
        column = [texts[int(c)] for c in rows[:, n + j]]
        feeds[graph_inputs[name]] = np.array(column, dtype=object)
    if module.hparams.get("exposure_column"):
        feeds[EXPOSURE_INPUT] = np.ascontiguousarray(rows[:, -1])
    return feeds


def _compare(
    name: str,
    ort_out: np.ndarray,
    torch_out: np.ndarray,
    rtol: float,
    lower: float | None,
    log_scale: bool = False,
) -> OutputParity:
    """Compare one output. ``log_scale``: compare the logs (for outputs that are an
    exponential of the parameters, e.g. a log-normal mean, whose float32 error grows with
    the exponent)."""
    a, t = ort_out.astype(np.float64), torch_out.astype(np.float64)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            a, t = np.log(a), np.log(t)
    finite = np.isfinite(t)
    atol = rtol * max(1.0, float(np.abs(t[finite]).max()) if finite.any() else 1.0)
    diff = np.abs(a - t)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(t != 0, diff / np.abs(t), np.where(diff == 0, 0.0, np.inf))
    same_nonfinite = (~finite) & (a == t)
    close = (diff <= atol + rtol * np.abs(t)) | same_nonfinite
    positive_ok = (
        True if lower is None else bool(np.all(np.isfinite(a) & (a > lower) & (t > lower)))
    )
    return OutputParity(
        name=name,
        max_abs_error=float(np.max(np.where(same_nonfinite, 0, diff))),
        max_rel_error=float(np.max(np.where(same_nonfinite, 0, rel))),
        atol=atol,
        rtol=rtol,
        min_value=float(np.min(a)),
        lower_bound=lower,
        passed=bool(close.all()) and positive_ok,
    )


def check_parity(
    module: nn.Module,
    onnx_path: str | Path,
    providers: tuple[str, ...] | list[str] = ("cpu",),
    n_random: int = 1024,
    seed: int = 0,
    threads: int = 1,
) -> ParityReport:
    """Run the module and the ONNX file on the same inputs and compare every output.

    Example:
        >>> import tempfile
        >>> from softzoo.models import SoftRegressor
        >>> from softzoo.onnx import export
        >>> model = SoftRegressor(3, hidden=[8])
        >>> path = export(model, tempfile.mkdtemp() + "/m.onnx")
        >>> check_parity(model, path).passed
        True
    """
    if n_random < 0:
        raise ValueError(f"the number of random parity rows must be >= 0, got {n_random}")
    module = module.eval()
    inputs = parity_inputs(module, n_random, seed)
    with torch.no_grad():
        expected = [t.numpy() for t in _Deployed(module)(torch.from_numpy(inputs))]
    lower = {p.name: p.lower for p in module.family.params if p.positive}
    report = ParityReport(onnx_file=str(onnx_path))
    report.metadata_mismatches = metadata_mismatches(module, onnx_path)
    feeds = graph_feeds(module, inputs)
    for provider in providers:
        sess = session(onnx_path, provider, threads)
        _check_interface(sess, module, feeds, onnx_path)
        names = [o.name for o in sess.get_outputs()]
        got = sess.run(None, feeds)
        rtol = PROVIDERS[provider][2]
        derived_log = module.family.support != "real"
        outputs = []
        for n, g, e in zip(names, got, expected, strict=True):
            param = n.removeprefix("member_")
            # a probability (P(y = 0)) is compared as it is: its log is not what users read
            derived = param not in module.param_names and param != "prob_zero"
            outputs.append(_compare(n, g, e, rtol, lower.get(param), derived_log and derived))
        report.providers.append(ProviderParity(provider, len(inputs), outputs))
    return report


def _check_interface(sess, module: nn.Module, feeds: dict, onnx_path: str | Path) -> None:
    """The graph must take the module's inputs and give its outputs."""
    widths = {i.name: i.shape[-1] for i in sess.get_inputs()}
    expected = {
        name: (rows.shape[1] if rows.ndim == 2 else "batch") for name, rows in feeds.items()
    }
    if widths != expected:
        raise ValueError(
            f"{str(onnx_path)!r} takes inputs {widths}, the module {expected}: it was exported "
            "from a different model"
        )
    names = [o.name for o in sess.get_outputs()]
    if names != output_names(module):
        raise ValueError(
            f"{str(onnx_path)!r} has outputs {names}, the module {output_names(module)}: it "
            "was exported from a different model"
        )


def export_certified(
    module: nn.Module,
    path: str | Path,
    *,
    softplus: str = "exact",
    model_name: str | None = None,
    providers: tuple[str, ...] | list[str] = ("cpu",),
) -> ParityReport:
    """Export ``module`` to ``path``, check its parity, and store the report in the file's
    ``parity`` metadata: the one way softzoo ships an ONNX file (``softzoo export``, the
    demo, the zoo build).

    Example:
        >>> import tempfile
        >>> from softzoo.models import SoftRegressor
        >>> report = export_certified(SoftRegressor(3, hidden=[8]), tempfile.mkdtemp() + "/m.onnx")
        >>> report.passed, "parity" in read_metadata(report.onnx_file)
        (True, True)
    """
    exported = export(module, path, softplus=softplus, model_name=model_name)
    report = check_parity(module, exported, providers)
    write_metadata(exported, {"parity": json.dumps(report.to_dict())})
    return report
