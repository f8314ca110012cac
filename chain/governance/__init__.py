"""Governance [GOV-*]: validators admit members and change the validator set; equivocation
evidence [TX-EVIDENCE.1] bans a validator. See protocol_spec/ledger.md §6."""
