"""``schakel demo``: two networks from the report, played against a real server.

The demo starts ``schakel serve`` as a child process on a free loopback port, gives
every organisation its own home directory (keystore, ``client.json``, ``state.db``) and
plays a story through the public client library (:class:`schakel.client.Partner`): real
keys, real signed requests, real verification.  It narrates what each party sees and
what it cannot see, and every claim is a *check*: the demo exits 0 only if every check
held, so ``make demo`` doubles as an end-to-end test a newcomer can read.

* :mod:`~schakel.cli.demo.story` -- the acts in the report's order; read this first;
* :mod:`~schakel.cli.demo.neighbourhood`, :mod:`~schakel.cli.demo.oggz`,
  :mod:`~schakel.cli.demo.oversight` -- the acts, one module per network and one for
  what is checked afterwards;
* :mod:`~schakel.cli.demo.cast` -- the organisations, the invented people and texts;
* :mod:`~schakel.cli.demo.stage` -- what the acts share, and the moves they all make;
* :mod:`~schakel.cli.demo.tally` -- the narration and its checks;
* :mod:`~schakel.cli.demo.runner` -- ``schakel demo`` itself: the workspace, the server
  process (:mod:`schakel.cli.serverprocess`), signals, ``--serve`` and ``--keep``.
"""
