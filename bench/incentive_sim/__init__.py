"""Agent-based incentive simulation over the real ledger rules (issue 20; docs/incentives.md).

driver: the chain, real signed transactions in real blocks; agents: strategies and their
decisions; world: the block loop; accounting and scenarios: profit against honest work;
sweeps: the protocol parameters. Entry point: bench/incentives.py.
"""
