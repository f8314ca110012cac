"""A federated job on the ledger (chain.federated.open)."""
