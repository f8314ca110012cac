"""The worker (client.worker)."""
