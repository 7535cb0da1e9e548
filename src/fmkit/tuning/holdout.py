"""A validation set held out of the train channel, so pruning never looks at the test channel.

Hyperband and ``early_stopping='Auto'`` compare trials on an objective computed after every
epoch. Without a validation channel, a seeded random ``fraction`` of the train rows is set
aside as validation: every trial trains on the rest and reports ``validation:*`` on the
held-out rows. ``test:*`` values always come from the test channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmkit.errors import ConfigError, DataError
from fmkit.sparse import SparseBatch


@dataclass(frozen=True)
class HeldOut:
    """How a validation set was held out of train: the fraction, the seed, the row counts."""

    fraction: float
    seed: int
    validation_rows: int
    train_rows: int

    def describe(self) -> str:
        """One line for the registry's channel record and the log."""
        return (f"held out of train: {self.validation_rows} of "
                f"{self.validation_rows + self.train_rows} rows (validation_fraction "
                f"{self.fraction:g}, seed {self.seed})")


def check_fraction(value: object) -> float:
    """Return ``value`` as a float in (0, 1), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 < float(value) < 1.0:
        raise ConfigError(f"validation_fraction must be a number between 0 and 1 (exclusive); "
                          f"got {value!r}.")
    return float(value)


def hold_out(train: SparseBatch, fraction: float, seed: int
             ) -> tuple[SparseBatch, SparseBatch, HeldOut]:
    """Split ``train`` into (rows to train on, held-out validation rows, what was done).

    The rows are drawn with ``numpy.random.default_rng(seed)``, so every trial of a job (and
    a rerun with the same seed) holds out the same rows; both parts keep the rows' order.

    Raises
    ------
    DataError
        ``train`` is too small to leave at least one row on each side.
    """
    fraction = check_fraction(fraction)
    n = train.n_rows
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"validation_fraction={fraction:g} of the {n} train rows leaves "
                        f"{n_val} for validation and {n - n_val} to train on; pruning "
                        "(hyperband, early_stopping Auto) needs both: pass a validation "
                        "channel or change validation_fraction.")
    order = np.random.default_rng(seed).permutation(n)
    val_rows = np.sort(order[:n_val])
    keep = np.ones(n, dtype=bool)
    keep[val_rows] = False
    fit_rows = np.flatnonzero(keep)
    return (train.take(fit_rows), train.take(val_rows),
            HeldOut(fraction, int(seed), n_val, n - n_val))
