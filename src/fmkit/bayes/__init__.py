"""fmkit.bayes."""
