"""Private mode of a federated/v1 job [FED-PRIV.*] [TX-FED.8-10]: masked updates,
seed shares, keys on chain, and the aggregate from what is public. See
protocol_spec/federated.md §6."""
