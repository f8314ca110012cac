"""The HTTP API (client.api)."""
