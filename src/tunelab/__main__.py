"""``python -m tunelab`` runs the CLI."""

from tunelab.cli import main

main()
