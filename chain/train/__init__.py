"""The train job kinds (train/v1, v2, v3) [JOB-*] [VOTE-*]: posting, claims, turns, votes,
verdicts and challenges; ``holdout`` is train/v3's hidden test set. See
protocol_spec/ledger.md §5 and job_contract.md."""
