"""The audit log's read path: queries built from the catalogue, integrity checks, statistics.

What the operator CLI uses to query, explain and repair the audit log; the write path (the
receiver) lives in ``p0_receiver.service`` and ``p0_receiver.adapters``.
"""
