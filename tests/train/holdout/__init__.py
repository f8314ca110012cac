"""train/v3's hidden test set on the ledger (chain.train.holdout)."""
