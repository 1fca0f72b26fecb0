"""The audit log's pure read logic: the operator's questions, filters, integrity, statistics.

Reading goes through the ``AuditReader`` port (``p0_receiver.ports``); its Firestore
adapter is in ``p0_receiver.adapters.firestore``. Repairs are ``p0_receiver.repair``.
"""
