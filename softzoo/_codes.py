"""The codes of categorical cells, shared by the data modules that write them and the
tabular input layer that embeds them: a missing cell, a category the training split did not
have, and the first category of a column's (sorted) vocabulary; the i-th category is
``FIRST_CODE + i``."""

__all__ = ["FIRST_CODE", "MISSING_CODE", "UNSEEN_CODE"]

MISSING_CODE, UNSEEN_CODE, FIRST_CODE = 0, 1, 2
