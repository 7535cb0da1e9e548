"""fmkit.features."""
