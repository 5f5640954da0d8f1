"""``python -m schakel.cli``: the ``schakel`` command line."""

from schakel.cli.main import main

main()
