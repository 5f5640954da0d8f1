"""Subcommands of the ``schakel`` command line (cli/main.py)."""
