"""Training, testing and prediction stay bit for bit what tests/golden/training.json
recorded (see tests/golden_training.py): the guard of every refactoring of the model."""

import json
import os
import subprocess
import sys

from golden_training import PINNED_ENV, RECORD, SETTINGS


def test_six_settings_train_test_and_predict_bit_for_bit_as_recorded() -> None:
    script = RECORD.parent.parent / "golden_training.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **PINNED_ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = json.loads(RECORD.read_text())
    now = json.loads(done.stdout)
    assert sorted(recorded) == sorted(SETTINGS)
    for name in SETTINGS:
        for part in recorded[name]:
            assert now[name][part] == recorded[name][part], f"{name}: {part}"
