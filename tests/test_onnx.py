import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, every_family, predict_py
from torch import nn

from softzoo.cli import main
from softzoo.families import get_family, list_families
from softzoo.models import SoftRegressor
from softzoo.onnx import check_parity, export, parity_inputs, read_metadata, session

TINY = torch.finfo(torch.float32).tiny


class _Softplus(nn.Module):
    def __init__(self, beta: float, threshold: float) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)


def _run_lowering(
    beta: float, threshold: float, x: torch.Tensor, lowering: str
) -> tuple[np.ndarray, list[str]]:
    from softzoo.onnx.lowering import translation_table

    program = torch.onnx.export(
        _Softplus(beta, threshold).eval(),
        (x[:2],),
        dynamo=True,
        verbose=False,
        dynamic_shapes=({0: torch.export.Dim("n")},),
        custom_translation_table=translation_table(lowering),
    )
    sess = ort.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return out, [n.op_type for n in program.model_proto.graph.node]


@pytest.mark.parametrize(
    ("beta", "threshold"), [(1.0, 20.0), (1.0, 5.0), (2.0, 5.0), (0.5, 1.0), (3.0, 80.0)]
)
def test_exact_lowering_matches_torch_to_a_few_ulp(beta: float, threshold: float) -> None:
    x = torch.linspace(-130, 100, 1_000_001)
    out, ops = _run_lowering(beta, threshold, x, "exact")
    ref = F.softplus(x, beta, threshold).numpy()
    assert "Softplus" not in ops
    normal = np.abs(ref) >= TINY
    rel = np.abs(out[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 5e-7, rel.max()
    assert np.abs(out[~normal] - ref[~normal]).max(initial=0) <= 3 * 1.4e-45
    # No spurious zeros; near -104 the true value rounds up to the smallest denormal, which
    # onnxruntime returns where torch's exp gives 0, so the converse need not hold.
    assert (out[ref != 0] > 0).all(), "the lowering flushed tiny values to 0"


def test_exact_lowering_keeps_tiny_values_the_prototype_loses() -> None:
    x = torch.tensor([-30.0, -60.0, -80.0, -100.0])
    out, _ = _run_lowering(1.0, 20.0, x, "exact")
    expected = F.softplus(x.double()).numpy()
    np.testing.assert_allclose(out[:3], expected[:3], rtol=3e-7)
    assert out[3] > 0  # a denormal; log(1 + exp(-100)) would round to exactly 0


def test_identity_branch_is_implied_above_16_for_every_float32() -> None:
    """The basis for omitting Greater/Where when beta == 1 and threshold >= 16."""
    start, stop = np.float32(16.0).view(np.int32), np.float32(88.7).view(np.int32)
    x = torch.from_numpy(np.arange(start, stop, dtype=np.int32).view(np.float32))
    out, ops = _run_lowering(1.0, 20.0, x, "exact")
    assert "Where" not in ops
    assert np.array_equal(out, F.softplus(x).numpy())


@pytest.mark.parametrize("lowering", ["exact", "plain"])
def test_threshold_semantics_survive_export(lowering: str) -> None:
    """The legacy exporter drops threshold: softplus(3, threshold=2) must stay 3, not 3.0486."""
    out, _ = _run_lowering(1.0, 2.0, torch.tensor([3.0, 1.0]), lowering)
    assert out[0] == 3.0 and out[1] == pytest.approx(np.log1p(np.e), rel=1e-6)


def _model(family: str, activation: str, seed: int = 0) -> SoftRegressor:
    torch.manual_seed(seed)
    model = SoftRegressor(
        5,
        family=family,
        hidden=[16, 16],
        activation=activation,
        feature_names=["a", "b", "c", "d", "e"],
        target_name="target",
    )
    count = get_family(family).support == "count"
    y = torch.poisson(torch.rand(200) * 8) if count else torch.rand(200) * 50 + 0.5
    model.fit_scaling(torch.randn(200, 5) * 10 + 3, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.eval()


#: Families whose ONNX parity runs in the fast suite through tests/test_tabm.py's ensemble
#: row: their single-model row here runs under ``slow`` (gaussian and lognormal stay: only
#: a single model's graph has their closed-form interval outputs).
_PARITY_ELSEWHERE = (
    "gamma",
    "negative_binomial",
    "poisson",
    "positive",
    "student_t",
    "tweedie",
)


@pytest.mark.parametrize(
    "family",
    [
        pytest.param(f, marks=pytest.mark.slow) if f in _PARITY_ELSEWHERE else f
        for f in every_family()
    ],
)
@pytest.mark.parametrize("activation", ["softplus", pytest.param("relu", marks=pytest.mark.slow)])
def test_every_family_exports_and_passes_cpu_parity(tmp_path, family: str, activation: str) -> None:
    model = _model(family, activation)
    path = export(model, tmp_path / "m.onnx")
    report = check_parity(model, path)
    assert report.passed, report.to_json()
    lower = {p.name: p.lower for p in get_family(family).params if p.positive}
    sess = session(path)
    outputs = dict(
        zip(
            [o.name for o in sess.get_outputs()],
            sess.run(None, {"features": parity_inputs(model)}),
            strict=True,
        )
    )
    for name, bound in lower.items():
        assert np.isfinite(outputs[name]).all() and (outputs[name] > bound).all()


def test_graph_interface_and_metadata(tmp_path) -> None:
    model = _model("student_t", "softplus")
    path = export(model, tmp_path / "t.onnx", model_name="demo-t")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["features"]
    assert [o.name for o in graph.output] == ["loc", "scale", "df", "mean"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not any(n.op_type == "Softplus" for n in graph.node)
    meta = read_metadata(path)
    assert meta["family"] == "student_t" and meta["model_name"] == "demo-t"
    assert json.loads(meta["feature_names"]) == ["a", "b", "c", "d", "e"]
    assert json.loads(meta["positive_params"]) == {"scale": 0.0, "df": 2.0}
    assert json.loads(meta["activations"])[0] == {
        "name": "softplus",
        "beta": 1.0,
        "threshold": 20.0,
    }
    assert meta["softplus_lowering"] == "exact" and meta["softzoo_version"]
    sess = session(path)
    for batch in (1, 777):
        assert sess.run(None, {"features": np.zeros((batch, 5), np.float32)})[0].shape == (batch,)


@pytest.mark.slow
def test_export_is_deterministic(tmp_path) -> None:
    model = _model("gaussian", "softplus")
    a, b = export(model, tmp_path / "a.onnx"), export(model, tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes()
    assert b"/work/" not in a.read_bytes() and b"stack_trace" not in a.read_bytes()


def test_parity_catches_a_wrong_graph(tmp_path) -> None:
    model = _model("gamma", "softplus")
    path = export(model, tmp_path / "g.onnx")
    proto = onnx.load(str(path))
    init = proto.graph.initializer[0]
    values = onnx.numpy_helper.to_array(init).copy()
    values.flat[0] += 1e-3
    init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    onnx.save_model(proto, str(path))
    assert not check_parity(model, path).passed


def test_parity_rejects_an_export_of_another_model(tmp_path) -> None:
    path = export(_model("poisson", "relu"), tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="it was exported from a different model"):
        check_parity(_model("gaussian", "relu"), path)


def test_truncated_onnx_file(tmp_path) -> None:
    path = export(_model("gaussian", "relu"), tmp_path / "m.onnx")
    (tmp_path / "cut.onnx").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="is not a readable ONNX file"):
        read_metadata(tmp_path / "cut.onnx")


@pytest.mark.slow
def test_failed_export_leaves_the_old_file_intact(tmp_path, monkeypatch) -> None:
    model = _model("gaussian", "softplus")
    path = export(model, tmp_path / "m.onnx")
    before = path.read_bytes()

    def broken_save(proto, target):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export(_model("gaussian", "relu", seed=3), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_refuses_a_missing_directory(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"directory .* does not exist"):
        export(_model("gaussian", "relu"), tmp_path / "no" / "m.onnx")


@pytest.fixture
def checkpoint(tmp_path: Path, quiet_trainer) -> Path:
    from softzoo.data import TabularDataModule

    dm = TabularDataModule(dataset="yacht", batch_size=32)
    model = SoftRegressor(
        dm.n_features, family="lognormal", hidden=[16], feature_names=dm.feature_names
    )
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    return tmp_path / "m.ckpt"


def test_cli_export_parity_and_predictor_without_torch(tmp_path, capsys, checkpoint) -> None:
    ckpt = checkpoint
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--ckpt_path", str(ckpt), "--output", str(onnx_path)]) == 0
    assert "parity cpu: PASS" in capsys.readouterr().out
    assert json.loads(read_metadata(onnx_path)["parity"])["passed"] is True
    assert main(["parity", str(onnx_path), "--ckpt_path", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["providers"][0]["provider"] == "cpu"

    from softzoo import datasets

    frame = datasets.load_frame("yacht").sample(40, random_state=0)
    frame.to_csv(tmp_path / "in.csv", index=False)
    script = (
        "import sys, runpy; sys.modules['torch'] = None; "
        f"sys.argv = ['predict.py', {str(onnx_path)!r}, {str(tmp_path / 'in.csv')!r}, '-o', {str(tmp_path / 'out.csv')!r}]; "
        f"runpy.run_path({str(ROOT / 'export/predict.py')!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    got = np.genfromtxt(tmp_path / "out.csv", delimiter=",", names=True)
    from softzoo.models import load_checkpoint

    model = load_checkpoint(ckpt)
    features = torch.tensor(frame[model.feature_names].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        loc, scale = model(features)
    np.testing.assert_allclose(got["loc"], loc.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["scale"], scale.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["mean"], model.family.mean((loc, scale)).numpy(), rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    return export(SoftRegressor(3, hidden=[4]), tmp_path_factory.mktemp("tiny") / "m.onnx")


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("a,b\n1,2\n", "lacks feature column"),
        ("x0,x1,x2\n1,2,oops\n", "line 2: column 'x2' holds 'oops', not a number"),
        ("x0,x1,x2\n1,inf,3\n", "line 2: column 'x1' holds 'inf': inf or beyond float32"),
        ("x0,x1,x2\n1,2\n", "line 2: 2 cells for 3 columns"),
        ("", "is empty"),
    ],
)
def test_predictor_bad_input(tmp_path, tiny_onnx, csv: str, message: str) -> None:
    path = tiny_onnx
    (tmp_path / "in.csv").write_text(csv)
    result = predict_py(path, tmp_path / "in.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_predictor_python_api_checks_the_feature_count(tiny_onnx) -> None:
    sys.path.insert(0, str(ROOT / "export"))
    try:
        from predict import Predictor
    finally:
        sys.path.pop(0)
    path = tiny_onnx
    with pytest.raises(
        ValueError, match=r"expected rows with 3 features \(x0, x1, x2\), got shape \(2, 4\)"
    ):
        Predictor(path).predict(np.zeros((2, 4)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "--ckpt_path", "missing.ckpt", "--output", "m.onnx"],
            "checkpoint 'missing.ckpt' does not exist",
        ),
        (
            ["parity", "missing.onnx", "--ckpt_path", "CKPT"],
            "ONNX file 'missing.onnx' does not exist",
        ),
        (
            ["export", "--ckpt_path", "OTHER", "--output", "m.onnx"],
            "is a checkpoint of a different model",
        ),
        (
            ["export", "--ckpt_path", "CSV", "--output", "m.onnx"],
            "is not a PyTorch Lightning checkpoint file",
        ),
        (
            ["export", "--ckpt_path", "CKPT", "--output", "no/dir/m.onnx"],
            "directory 'no/dir' does not exist",
        ),
    ],
)
def test_cli_bad_input(tmp_path, monkeypatch, capsys, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "OTHER")
    (tmp_path / "CSV").write_text("a,b\n1,2\n")
    torch.save(
        {
            "state_dict": SoftRegressor(2, hidden=[4]).state_dict(),
            "hyper_parameters": {"in_features": 2, "family": "gaussian", "hidden": [4]},
        },
        tmp_path / "CKPT",
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.gpu
def test_cuda_parity_without_tf32(tmp_path) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    for family in list_families():
        model = _model(family, "softplus")
        report = check_parity(
            model, export(model, tmp_path / f"{family}.onnx"), providers=("cpu", "cuda")
        )
        assert report.passed, report.to_json()


@pytest.mark.parametrize("norm", [None, "layer", "batch"])
def test_parity_rows_reach_the_softplus_threshold_behind_a_norm_layer(norm) -> None:
    from softzoo.onnx.parity import _threshold_rows

    torch.manual_seed(1)
    # a layer norm bounds each unit below sqrt(width - 1): 1.5 is reachable along the
    # gradient ray for some units, 20 for none (then there is no such row to test)
    model = SoftRegressor(4, hidden=[6, 5], norm=norm, softplus_threshold=1.5).eval()
    rows = _threshold_rows(model)
    assert len(rows) == 6 if norm != "layer" else 1 <= len(rows) <= 6
    pre = model.body.double().pre_activation(torch.tensor(np.stack(rows))).detach().numpy()
    model.body.float()
    assert np.isclose(pre, 1.5, rtol=1e-9, atol=0).any(axis=1).all()


def test_metadata_and_parity_of_a_model_with_layer_norm(tmp_path) -> None:
    model = SoftRegressor(4, hidden=[6, 5], norm="layer", activation=["softplus", "relu"])
    path = export(model, tmp_path / "m.onnx")
    layers = json.loads(read_metadata(path)["activations"])
    assert layers == [{"name": "softplus", "beta": 1.0, "threshold": 20.0}, {"name": "relu"}]
    assert check_parity(model, path, n_random=16).passed
