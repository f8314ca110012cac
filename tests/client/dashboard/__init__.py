"""The dashboard (client.observe.dashboard)."""
