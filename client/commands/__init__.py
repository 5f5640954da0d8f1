"""Subcommands of the ``schakel`` command line (client/cli.py)."""
