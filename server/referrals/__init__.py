"""Referrals between networks on one server (protocol.md §D.8, flow 7; docs/protocol.md
§15 §15.5).

``checks`` (verifying the referral envelope against the caller and the directory),
``data`` (the one write transaction that stores the referral and appends ``referral-out``
to the sending log and ``referral-in`` to the receiving log; the ``referral-closed``
notification when the receiving case closes; the coordinator's page) and ``routes``
(thin handlers).
"""
