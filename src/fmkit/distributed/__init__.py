"""fmkit.distributed."""
