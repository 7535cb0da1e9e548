"""fmkit.model."""
