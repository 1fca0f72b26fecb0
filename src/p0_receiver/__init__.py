"""Receiver for P0 Security custom-notifier webhooks: verify, audit in Firestore, publish to Pub/Sub."""

__version__ = "0.1.0"
