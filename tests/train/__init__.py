"""train/v1-v3 on the ledger (chain.train)."""
