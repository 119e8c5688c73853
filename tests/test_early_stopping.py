from types import SimpleNamespace

import torch
from conftest import ROOT

from softzoo.callbacks import EarlyStopping
from softzoo.models import SoftRegressor
from softzoo.runner import run_cli


def _trainer_with_best(path, monitor: str = "val_loss") -> SimpleNamespace:
    checkpoint = SimpleNamespace(monitor=monitor, best_model_path=str(path), best_model_score=0.5)
    return SimpleNamespace(checkpoint_callback=checkpoint)


def _saved(tmp_path, seed: int) -> tuple:
    torch.manual_seed(seed)
    model = SoftRegressor(3, family="gaussian", hidden=[8])
    path = tmp_path / f"best-{seed}.ckpt"
    torch.save({"state_dict": model.state_dict()}, path)
    return model, path


def test_fit_end_loads_the_best_checkpoint_weights(tmp_path) -> None:
    best, path = _saved(tmp_path, seed=1)
    torch.manual_seed(2)
    model = SoftRegressor(3, family="gaussian", hidden=[8])
    EarlyStopping(monitor="val_loss").on_fit_end(_trainer_with_best(path), model)
    torch.testing.assert_close(
        model.state_dict(), best.state_dict(), rtol=0, atol=0, equal_nan=True
    )


def test_nothing_is_restored_when_off_or_the_best_is_of_another_quantity(tmp_path) -> None:
    _, path = _saved(tmp_path, seed=1)
    torch.manual_seed(2)
    model = SoftRegressor(3, family="gaussian", hidden=[8])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    EarlyStopping(monitor="val_loss").on_fit_end(_trainer_with_best(path, "val_rmse"), model)
    EarlyStopping(monitor="val_loss", restore_best_weights=False).on_fit_end(
        _trainer_with_best(path), model
    )
    EarlyStopping(monitor="val_loss").on_fit_end(_trainer_with_best(""), model)
    torch.testing.assert_close(model.state_dict(), before, rtol=0, atol=0, equal_nan=True)


def test_the_epochs_of_a_mean_warm_up_are_not_counted(monkeypatch) -> None:
    from lightning.pytorch.trainer.states import TrainerFn

    checked = []
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    monkeypatch.setattr(stopper, "_run_early_stopping_check", lambda t: checked.append(t.epoch))
    model = SoftRegressor(3, family="gaussian", hidden=[8], warmup_epochs=3)
    for epoch in range(5):
        trainer = SimpleNamespace(
            current_epoch=epoch,
            epoch=epoch,
            sanity_checking=False,
            fast_dev_run=False,
            state=SimpleNamespace(fn=TrainerFn.FITTING),
        )
        stopper.on_validation_end(trainer, model)
    assert checked == [3, 4]


def test_example_configs_stop_early_and_hand_back_the_best_epoch(yacht_fit) -> None:
    cli = run_cli(["fit", *yacht_fit("--trainer.max_epochs", "4")])
    stopper = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stopper) == 1 and stopper[0].monitor == "val_loss"
    best = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)
    torch.testing.assert_close(
        cli.model.state_dict(), best["state_dict"], rtol=0, atol=0, equal_nan=True
    )


def test_every_example_and_zoo_recipe_stops_early_on_val_loss() -> None:
    """The zoo recipes write their EarlyStopping out (reproduce rebuilds them exactly); the
    example configs leave it, and the epochs, to the default recipe (tests/test_recipe.py
    checks that the recipe's stops on val_loss)."""
    import yaml

    for path in sorted((ROOT / "configs/zoo").glob("*.yaml")):
        callbacks = yaml.safe_load(path.read_text())["trainer"].get("callbacks", [])
        stoppers = [c for c in callbacks if c["class_path"] == "softzoo.callbacks.EarlyStopping"]
        assert len(stoppers) == 1, path
        assert stoppers[0]["init_args"]["monitor"] == "val_loss", path
    for path in sorted(p for p in (ROOT / "softzoo/configs").glob("*.yaml") if p.stem != "trainer"):
        assert "trainer" not in yaml.safe_load(path.read_text()), path
