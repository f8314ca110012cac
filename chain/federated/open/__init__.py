"""A federated/v1 job on the ledger [TX-FED.1-7] [FED-ROUND.*] [FED-END.*] [FED-STATE.*]:
bodies, records, handlers, the round machine's block step, and the reads a client needs.
Private mode (``chain.federated.private``) extends these. See
protocol_spec/federated.md §7."""
