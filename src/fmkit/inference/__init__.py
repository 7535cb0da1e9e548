"""fmkit.inference."""
