"""The pure core: parsing and verifying a delivery, the audit record, the findings rules, the
query catalogue and the error classes. No I/O, no clock, no Google, Flask or terminal library:
callers pass time and data in; nothing here imports a port, a use case, an adapter or an
entrypoint (``tests/unit/test_architecture.py`` holds it so).
"""
