"""fmkit.engine."""
