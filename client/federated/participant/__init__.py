"""A data owner's side of federated jobs: train locally, commit, reveal, in open
and private rounds [JOB-FED.*] [FED-PRIV.10]."""
