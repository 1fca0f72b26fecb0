"""Composition roots: one per function (``webhook``, ``redrive``), and ``functions``, the one
``main.py`` calls, which imports only the served function's. The CLI composes its own adapters
from ``p0_receiver.adapters.clients``.
"""
