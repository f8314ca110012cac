"""Who verifies (chain.verifiers)."""
