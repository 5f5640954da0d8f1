"""The ``schakel`` command line and the demo: the one layer that uses both the client
library and the server (ADR 0018).

* :mod:`schakel.cli.main` -- the entry point (``schakel``): the command group, and the
  mapping of every error to a refusal a person can act on, with its exit code;
* :mod:`schakel.cli.commands` -- one module per subcommand, each a thin shell over
  :class:`schakel.client.Partner` (``serve`` and ``server`` over :mod:`schakel.server`);
* :mod:`schakel.cli.demo` -- ``schakel demo``, practices of the report played against a real server;
* :mod:`schakel.cli.serverprocess` -- ``schakel serve`` as a child process, for the demo and
  the tests.

``python -m schakel.cli`` runs the same command line.
"""
