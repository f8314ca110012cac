"""BFT consensus among the permissioned validators (Tendermint family), sans-I/O.

Entry points for the rest of the node:

- ``core.ConsensusCore``: the state machine (events in, actions out);
- ``certificate.verify_certificate``: check a stored block's commit certificate;
- ``evidence.check_evidence``: check a duplicate-vote evidence transaction;
- ``validators.ValidatorSet``: the set of a height, built by the ledger;
- ``wal.WriteAheadLog``: the signed-message log the driver keeps.

The rules are in protocol_spec/consensus.md; IDs like [CONS-LOCK.1] are cited
in docstrings and test names.
"""
