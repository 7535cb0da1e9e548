"""fmkit.serving."""
