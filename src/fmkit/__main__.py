"""``python -m fmkit`` runs the CLI (also what torchrun launches)."""

from fmkit.cli import main

main()
