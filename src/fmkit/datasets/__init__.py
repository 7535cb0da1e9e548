"""fmkit.datasets."""
