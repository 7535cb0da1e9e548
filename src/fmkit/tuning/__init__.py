"""fmkit.tuning."""
