"""Governance and equivocation evidence (chain/governance/)."""
