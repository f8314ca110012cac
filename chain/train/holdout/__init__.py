"""train/v3's hidden test set [HOLDOUT-*]: its spec, records, split, rules and
reveal transactions. See protocol_spec/job_contract.md §1b."""
