"""Private mode of a federated job (chain.federated.private)."""
