"""A bonded verifier's side of federated jobs: recompute, aggregate when drawn, vote
[FED-ROUND.*] [FED-VOTE.*]."""
