"""The disclosure engine (docs/protocol.md §15 §15.2, §15.3): consent, grants,
releases, bemoeizorg, reviews, purges and the subject access report.

Split like the rest of ``server/``: ``facts`` (policy facts held in memory), ``checks``
(verifying objects), ``data`` and ``bemoeizorg`` (the ``*_txn`` writes and reads, where
``schakel.protocol.policy.decide`` runs inside the write transaction and every outcome is appended
to the audit log with ``schakel.server.audit.append_txn``), ``report`` (the subject access report
from the audit log) and ``routes`` (thin handlers).
"""
