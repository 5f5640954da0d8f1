"""``schakel witness``: a small, separate service a third party runs (a municipality, the
GGD's regional office, an auditor's office) that cosigns the checkpoints of the logs it
witnesses when each is consistent with the last it cosigned, and refuses and records one
that is not (c2sp.org/tlog-witness; docs/protocol.md §17.4, ADR 0047).

- :mod:`~schakel.server.witness.rules`: what the witness decides (pure);
- :mod:`~schakel.server.witness.store`: its SQLite state;
- :mod:`~schakel.server.witness.keys`: its name and Ed25519 key;
- :mod:`~schakel.server.witness.app`: its aiohttp app.
"""
