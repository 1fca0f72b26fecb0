"""Receiver for P0 Security custom-notifier webhooks: verify, audit, publish on Google Cloud."""

__version__ = "0.1.0"
