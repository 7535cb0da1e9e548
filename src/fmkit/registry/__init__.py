"""fmkit.registry."""
