"""fmkit.io."""
