"""``python -m foleycrafter.data.synthfoley ...`` runs :func:`~foleycrafter.data.synthfoley.cli.main`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
