"""softzoo's default recipe: the settings that scale with the table, from the number of
training rows alone (never the validation or test rows), so that the one-line form
``softzoo fit --data.path F --data.target T`` fits the table it is given
(docs/training.md, "A default that fits the table").

Every setting of the recipe is ``"auto"`` by default in ``softzoo fit`` and resolved here;
a value the user gives (on the command line or in a config) is kept. In Python,
:class:`~softzoo.models.SoftRegressor` takes ``"auto"`` too, with ``train_rows``.

Example:
    >>> recipe = default_recipe(40_000)
    >>> recipe.hidden, recipe.numeric_embedding, recipe.ensemble_type, recipe.ensemble_size
    ([128, 128], 'piecewise_linear', 'mini', 8)
    >>> default_recipe(400).batch_size
    64
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AUTO", "AUTO_MODEL_KEYS", "Recipe", "default_recipe", "resolve_model_options"]

#: The value of a setting that the recipe chooses.
AUTO = "auto"

#: The model settings that may be "auto".
AUTO_MODEL_KEYS = (
    "hidden",
    "numeric_embedding",
    "numeric_bins",
    "ensemble_type",
    "ensemble_size",
    "warmup_fraction",
    "lr",
    "first_scaling",
)


#: The training rows a piecewise-linear bin holds at least: fewer than 8 bins' worth of
#: rows (320) get no encoding (on UCI selection rows: yacht's 200-odd rows fit better on
#: the standardised values, Boston's 400-odd on bins), and 400 epochs with the first
#: scaling at 1 (yacht's selection NLL: 0.315; random signs 0.328; at 200 epochs 0.443
#: and 0.701).
_BIN_ROWS = 40

#: Rows a fit of a large table visits (epochs x training rows): its epochs beyond 200,000
#: rows, where 40 epochs would cost more than a large table needs to converge.
_ROW_VISITS = 8_000_000


@dataclass(frozen=True)
class Recipe:
    """The default settings for a table of ``train_rows`` training rows."""

    train_rows: int
    categorical: bool
    hidden: list[int]
    numeric_embedding: str
    numeric_bins: int
    ensemble_type: str
    ensemble_size: int
    warmup_fraction: float
    lr: float
    first_scaling: str
    batch_size: int
    max_epochs: int
    patience: int


def default_recipe(train_rows: int, categorical: bool = False) -> Recipe:
    """The recipe for ``train_rows`` training rows of a table with text (``categorical``)
    columns or without (docs/training.md gives the evidence).

    * network: 2 hidden layers, 64 wide below 2,000 rows, else 128;
    * numeric columns: piecewise-linear encoding on quantile bins, ``rows / 40`` bins
      between 8 and 48 (a bin holds at least ~40 rows); below 320 rows (8 such bins),
      no encoding;
    * ensemble: TabM-mini with 8 members (one shared MLP, per-member input scaling and
      heads: ~8x the compute of one model, not 8x the weights);
    * batch: 64 rows below 2,000, 128 below 10,000, 256 below 50,000, else 512;
    * epochs: at most 400 below 320 rows, 200 below 2,000, else 40 (one cosine schedule
      over them), and above 200,000 rows as many as visit 8 million rows (at least 5),
      so that a large table's fit stays within minutes (its cost still linear in rows);
      early stopping on ``val_loss`` with a patience of a quarter of them, the best
      epoch's weights restored;
    * mean warm-up: the first 10 % of the epochs;
    * learning rate (Adam's, at the top of the cosine): 3e-3 below 2,000 rows, else 6e-3
      (the short schedule of 40 epochs starts higher);
    * the members' first scaling: TabM's random signs where every column is numeric and
      encoded piecewise-linearly, else 1 for every member (where the table has text
      columns, or below 320 rows: :func:`softzoo.nn.members.first_scaling` says why).
    """
    if not isinstance(train_rows, int) or train_rows < 1:
        raise ValueError(f"train_rows must be a whole number >= 1, got {train_rows!r}")
    width = 64 if train_rows < 2_000 else 128
    batch = 64 if train_rows < 2_000 else 128 if train_rows < 10_000 else 256
    batch = 512 if train_rows >= 50_000 else batch
    epochs = 200 if train_rows < 2_000 else min(40, max(5, _ROW_VISITS // train_rows))
    tiny = train_rows < _BIN_ROWS * 8  # fewer rows than 8 bins need
    epochs = 400 if tiny else epochs
    embedding = "none" if tiny else "piecewise_linear"
    return Recipe(
        train_rows=train_rows,
        categorical=bool(categorical),
        hidden=[width, width],
        numeric_embedding=embedding,
        numeric_bins=min(48, max(8, train_rows // _BIN_ROWS)),
        ensemble_type="mini",
        ensemble_size=8,
        warmup_fraction=0.1,
        lr=3e-3 if train_rows < 2_000 else 6e-3,
        first_scaling=_first_scaling(categorical, embedding),
        batch_size=batch,
        max_epochs=epochs,
        patience=epochs // 4,
    )


def resolve_model_options(
    options: dict[str, Any],
    train_rows: int | None,
    point: bool = False,
    categorical: bool = False,
) -> dict[str, Any]:
    """``options`` with each "auto" model setting (:data:`AUTO_MODEL_KEYS`) replaced by the
    recipe's for ``train_rows`` (of a table with text columns where ``categorical``). An
    ensemble type or size the user gave is kept, and the other follows it: a size alone
    keeps its meaning from before the TabM types (``independent`` members), an
    ``independent`` type alone gets 5 members (a deep ensemble), a TabM type alone the
    recipe's size; the first scaling follows the numeric encoding, the user's or the
    recipe's; ``warmup_fraction`` is 0 where ``warmup_epochs`` is given. A ``point``
    family (no predictive distribution to mix) is one model.

    Example:
        >>> resolve_model_options({"ensemble_type": "auto", "ensemble_size": 1}, 500)
        {'ensemble_type': 'independent', 'ensemble_size': 1}
    """
    auto = [k for k in AUTO_MODEL_KEYS if options.get(k) == AUTO]
    if not auto:
        return dict(options)
    if train_rows is None:
        raise ValueError(
            f"{', '.join(f'{k}={AUTO!r}' for k in auto)} follow the size of the training split: "
            "give train_rows (softzoo fit links it from the data), or explicit values"
        )
    recipe = default_recipe(int(train_rows), categorical)
    resolved = dict(options)
    for key in auto:
        resolved[key] = getattr(recipe, key)
    kind, size = options.get("ensemble_type"), options.get("ensemble_size")
    if kind == AUTO and size != AUTO:
        resolved["ensemble_type"] = "independent"
    if size == AUTO and kind != AUTO:
        resolved["ensemble_size"] = 5 if kind == "independent" else recipe.ensemble_size
    if point and AUTO in (kind, size):
        resolved["ensemble_type"], resolved["ensemble_size"] = "independent", 1
    if options.get("first_scaling") == AUTO:
        embedding = resolved.get("numeric_embedding", recipe.numeric_embedding)
        resolved["first_scaling"] = _first_scaling(categorical, embedding)
    if options.get("warmup_fraction") == AUTO and options.get("warmup_epochs"):
        resolved["warmup_fraction"] = 0.0
    return resolved


def _first_scaling(categorical: bool, numeric_embedding: str) -> str:
    """TabM's random signs where every column is numeric and piecewise-linear, else ones:
    measured on validation rows of the peers tables (text columns) and UCI selection rows
    (docs/training.md, "The members' first scaling")."""
    return "random_signs" if numeric_embedding == "piecewise_linear" and not categorical else "ones"
