"""``schakel demo``: practices of the report, played against a real server.

The demo starts ``schakel serve`` as a child process on a free loopback port, gives
every organisation its own home directory (keystore, ``client.json``, ``state.db``) and
plays the report's practices (chapter 4, schema 2) through the public client library
(:class:`schakel.client.Partner`) and, where a person would, the command line: real keys,
real signed requests, real verification.  Each practice opens with what the report says of
it, narrates what each party sees and what it cannot see, and every claim is a *check*:
the demo exits 0 only if every check held, so ``make demo`` doubles as an end-to-end test
a newcomer can read.

* :mod:`~schakel.cli.demo.practices` -- the registry: one line per practice; read its
  docstring to add one;
* :mod:`~schakel.cli.demo.practice_amersfoort`, :mod:`~schakel.cli.demo.practice_utrecht`,
  :mod:`~schakel.cli.demo.practice_rotterdam`, :mod:`~schakel.cli.demo.practice_zeist`,
  :mod:`~schakel.cli.demo.practice_breda` -- one module per practice: what the report says
  of it, its cast, its acts;
* :mod:`~schakel.cli.demo.story` -- the practices in order, then
  :mod:`~schakel.cli.demo.oversight` on every network they founded;
* :mod:`~schakel.cli.demo.stage` -- what the practices share, the moves they all make, and
  the shape of a practice;
* :mod:`~schakel.cli.demo.tally` -- the narration and its checks;
* :mod:`~schakel.cli.demo.runner` -- ``schakel demo`` itself: the workspace, the server
  process (:mod:`schakel.cli.serverprocess`), signals, ``--serve`` and ``--keep``.
"""
