"""The golden record of SoftRegressor's training: six settings, each fitted for two epochs,
then tested and asked for predictions; the sha256 of every state-dict tensor, the logged
metrics (their float32 bits) and the predictions (their sha256).

Run as a script it prints the record as JSON; ``tests/test_golden.py`` runs it in a child
process with one thread and the scalar and MKL kernels pinned (``PINNED_ENV``), so that the
record does not depend on which x86 host computes it, and compares it with
``tests/golden/training.json``. Refactoring the model must keep it bit for bit; only a
change meant to alter training may rewrite it (``python tests/golden_training.py --write``).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The environment of the recording: scalar ATen kernels, MKL's reproducible code path,
#: one thread (a reduction's order then does not depend on the machine's cores).
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
RECORD = Path(__file__).with_name("golden") / "training.json"

#: name -> (target kind, SoftRegressor options)
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "gaussian": ("real", {"family": "gaussian"}),
    "gamma_warmup": ("positive", {"family": "gamma", "warmup_epochs": 1}),
    "student_t_faithful": ("real", {"family": "student_t", "faithful": True}),
    "poisson_ensemble": ("count", {"family": "poisson", "ensemble_size": 3}),
    "dequantized_conformal": (
        "rounded",
        {"family": "gaussian", "dequantize": "always", "calibration": "conformal"},
    ),
    "negative_binomial_ensemble_level": (
        "count",
        {"family": "negative_binomial", "ensemble_size": 3, "calibration": "conformal"},
    ),
}


def _target(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    signal = np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1]
    noise = (0.1 + 0.3 * np.abs(x[:, 0])) * rng.standard_normal(len(x))
    if kind == "real":
        return signal + noise
    if kind == "rounded":
        return np.round(signal + noise, 0)
    if kind == "positive":
        return np.exp(0.5 * signal + 0.3 * noise)
    return rng.poisson(np.exp(1.0 + 0.5 * signal)).astype(np.float64)


def _data(kind: str):
    from softzoo.data.base import ArrayDataModule, TabularArrays

    class _Golden(ArrayDataModule):
        def load_arrays(self) -> TabularArrays:
            rng = np.random.default_rng(7)
            x = rng.uniform(-3.0, 3.0, size=(400, 3))
            return TabularArrays(x, _target(kind, x, rng), ("a", "b", "c"), "y")

    return _Golden(batch_size=32, val_fraction=0.2, test_fraction=0.2, batches_per_step=4)


def _sha(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _bits(value: torch.Tensor | float) -> str:
    return struct.pack(">f", float(value)).hex()


def record_setting(name: str) -> dict[str, Any]:
    """Fit, test and predict one setting; its record."""
    from softzoo.models import SoftRegressor

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_quiet_trainer

    kind, options = SETTINGS[name]
    torch.manual_seed(0)
    data = _data(kind)
    model = SoftRegressor(3, hidden=[16, 16], feature_names=["a", "b", "c"], **options)
    trainer = make_quiet_trainer(max_epochs=2, num_sanity_val_steps=0)
    trainer.fit(model, data)
    fitted = {k: _bits(v) for k, v in sorted(trainer.callback_metrics.items())}
    tested = trainer.test(model, data, verbose=False)[0]
    predictions = trainer.predict(model, data)
    return {
        "state_dict": {k: _sha(v) for k, v in model.state_dict().items()},
        "dtypes": {k: str(v.dtype) for k, v in model.state_dict().items()},
        "fit_metrics": fitted,
        "test_metrics": {k: _bits(v) for k, v in sorted(tested.items())},
        "predictions": {k: _sha(torch.cat([p[k] for p in predictions])) for k in predictions[0]},
        "global_step": trainer.global_step,
    }


def record() -> dict[str, Any]:
    torch.set_num_threads(1)
    return {name: record_setting(name) for name in SETTINGS}


if __name__ == "__main__":
    result = json.dumps(record(), indent=1, sort_keys=True)
    if "--write" in sys.argv:
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(result + "\n")
    else:
        print(result)
