"""Adapters: every port implemented on Google Cloud clients (imported lazily: heavy), the
operator's adapter factories (``clients``), clients built once (``lazy``), the log line (``logs``).
"""
