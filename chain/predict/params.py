"""Protocol constants of prediction requests [PRED-PARAMS.1].

Constants, not genesis parameters, for the same reason as the quorum bounds of
[JOB-POST.1]: they follow from the argument in predict.md, not from a graph's taste,
and keep the ``Params`` wire form unchanged. A later version may move some to genesis.
"""

from __future__ import annotations

MIN_K = 3
"""[PRED-REQ.2] The fewest executors: one answer is unchecked, two cannot outvote a liar."""
MAX_K = 15
"""[PRED-REQ.2] The most executors: k answers cost k runs; 15 tolerates 7 liars."""
MAX_ROWS = 4096
"""[PRED-REQ.3] Rows in one request's input blob."""
MAX_INLINE_VALUES = 4096
"""[PRED-ANSWER.2] Fixed-point values one ``values`` answer carries inline (rows × outputs)."""
MIN_FEE_PER_ROW = 1
"""[PRED-REQ.4] The least fee per row per executor, in credits."""
MAX_OPEN_PER_REQUESTER = 8
"""[PRED-REQ.5] Open (unsettled) requests one requester may hold at once."""
MIN_WINDOW_MS = 1_000
MAX_WINDOW_MS = 3_600_000
"""[PRED-REQ.6] Bounds of the commit and reveal windows."""
MAX_ROYALTY_PERMILLE = 500
"""[PRED-MODEL.1] A model's owner takes at most half of a fee."""
MAX_CKKS_FEATURES = 128
"""[PRED-CKKS.1] Features of a model served on encrypted rows: one ciphertext (~330 KB) each."""
LOTTERY_DELAY = 1
"""[PRED-LOTTERY.1] Executors are drawn in the block at ``included_height + 1`` from its
parent's hash, the hash of the block that includes the request: it commits to the request
itself, so the requester could not know it when it sent the request (2 until the latency
change of predict.md §4, which argues why waiting one more block buys nothing)."""
MAX_FEATURES = 65_536
MAX_OUTPUTS = 256
MAX_LABELS = 1024
MAX_LABEL_LEN = 64
MAX_SCALE_EXP = 18
PREDICT_BOND = 100
"""[PRED-OFFER.1] Credits a member locks to offer prediction service: ten penalties, so one
bad run costs a tenth of it and an executor that keeps failing drops out of the lottery
[PRED-FORFEIT.1] instead of being drawn again and again."""
PREDICT_PENALTY = 10
"""[PRED-FORFEIT.1] Burned from the bond of each executor that forfeits one request: a fixed
amount, not a share of the fee, so a cheap request still punishes a lie and a rich requester
cannot make a forfeit ruinous; burned, not paid to the other executors, so nobody gains from
calling another wrong. It exceeds what a lazy run saves (the executor is unpaid anyway) and
is small next to ``PREDICT_BOND`` so an honest executor hit by an outage survives it."""
MAX_REVEAL_VALUES = 1_600
"""[PRED-REQUEST.1] Values a ``values`` request may ask for (rows × outputs) in the ledger:
a reveal carries them inline and must fit one transaction [TX-SIZE.1] (16 KiB; an int64
encodes in at most 9 bytes, 1 600 × 9 = 14 400 plus the envelope). Without it honest
executors could not reveal a 4 096-value answer and would forfeit as no-shows."""
