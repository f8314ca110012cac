"""The requester's side of prediction requests (issue 19): encrypted batches for now; the
CLI and the executor loop join in the next change."""
