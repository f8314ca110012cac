"""The ledger: identities, canonical encoding, transactions, state, blocks, storage.

Modules read like the protocol specification in ``protocol_spec/``; rule IDs
such as ``[TX-NONCE.1]`` in docstrings point to the paragraph they implement.
"""
