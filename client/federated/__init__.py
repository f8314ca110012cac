"""A data owner's side of federated jobs (issue 18): join, train locally, commit, reveal."""
