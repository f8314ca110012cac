"""The command line (client.cli)."""
