"""Adapters that implement the ports with Google Cloud clients (imported lazily: heavy)."""
