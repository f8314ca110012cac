"""Who verifies [VERIFY-*]: members opt in with a bond and lose it for a missed vote.
See protocol_spec/ledger.md §5 (Verifiers)."""
