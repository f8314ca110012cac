"""The ledger: identities, canonical encoding, transactions, state, blocks, storage.

Modules read like the protocol specification in ``protocol_spec/``; rule IDs
such as ``[TX-NONCE.1]`` in docstrings point to the paragraph they implement.

Layout (issue 32): the core at this level is what every part shares (``types``,
``encoding``, ``crypto``, ``fields``, ``records``, ``jobspec``, ``state``,
``transactions``, ``blocks``, ``transition``, ``penalties``, ``bank``, ``genesis``,
``storage``, ``mempool``, ``ledger``, ``consensus/``). Each part of the protocol is a
package named as the spec names it (``train/`` with ``train/holdout/``, ``verifiers/``,
``governance/``, ``predict/``, ``federated/`` with ``open/`` and ``private/``), holding
its ``bodies``, ``records``, ``rules`` or ``tx``, ``steps`` and ``reads``.
``registry`` is the one table that wires them: which handler takes which transaction,
and in which order the parts' block steps run.
"""
