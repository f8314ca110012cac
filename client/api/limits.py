"""Bounds of the HTTP API [API-LIMIT.*], shared by the server and its OpenAPI document."""

from __future__ import annotations

from chain.records import JobStatus
from chain.transactions import MAX_TX_SIZE

API_PREFIX = "/api/v1"
MAX_JSON_BODY = 4 * MAX_TX_SIZE
"""[API-LIMIT.1] Largest non-blob request body (a hex-encoded transaction in JSON fits)."""
MAX_UPLOAD_BYTES = 4 * 1024**3
"""[API-LIMIT.2] Default bound on one uploaded blob (the blob store's own bound)."""
MAX_TX_BATCH = 5_000
"""Transactions in one ``POST /txs/batch``."""
MAX_TX_BATCH_BYTES = 4 * 1024 * 1024
"""Summed transaction bytes in one ``POST /txs/batch``."""
MAX_BLOCKS_PAGE = 100
MAX_JOBS_PAGE = 500
MAX_WAIT_S = 60.0
"""Longest long poll (``/wait``)."""
MAX_WAITERS = 256
"""[API-LIMIT.3] Long polls held at once; more get a 503 (retry later)."""
MAX_UPLOADS = 4
"""Blob uploads in progress at once."""
RECENT_SUBMITS = 10_000
JOB_STATUS_FILTERS = (*[str(s) for s in JobStatus], "active", "settled", "all")
UPLOAD_CHUNK = 1024 * 1024
