"""``make demo-federated`` and ``make demo-federated-private``: federated jobs on a
real multi-process graph."""
