"""Protocol versions [BLOCK-VERSION.*]: which rule sets this software knows, and what each changes.

A chain starts at ``GENESIS_PROTOCOL_VERSION``. A governance plan [UPGRADE-PLAN.1] moves it
to a newer version at a fixed height; every block carries the version in force at its height
in its header. Software knows the versions listed here; a node whose software does not know
the version due at its next height stops there [UPGRADE-HALT.1] instead of guessing the rules.

To add a version: add its row below with what it changes, gate each changed rule on
``view.protocol_version >= N`` (so every height below the switch keeps the old rule exactly),
and give the rule an ID in protocol_spec/ledger.md §10.
"""

from __future__ import annotations

GENESIS_PROTOCOL_VERSION = 1
"""Every chain's version at genesis and until a plan switches it."""

SUPPORTED_PROTOCOL_VERSIONS: dict[int, str] = {
    1: "the ledger of protocol_spec/ledger.md without the version-gated rules",
    2: "a transfer may carry a memo: 1..64 bytes of the sender's reference (an invoice "
       "number, an order id), on the wire as a third element [TX-TRANSFER.2]",
    3: "state roots commit to the block's changes, the next validator set and, every 100 "
       "heights, the whole state's content: a new node starts from a snapshot, trusting "
       "only the genesis [STATE-ROOT.2] [SNAP-*]",
    4: "a federated job may name centered clipping around the last step "
       "(centered_clip), the CLI's default rule, and FLTrust through it (['fltrust', 1]) "
       "[FED-AGG.10-12] [TX-FED.11]; "
       "members leave replays of earlier updates out of a round [FED-REWARD.10] and "
       "judge near-copies on running sums too [FED-REWARD.11]; an update nearer another "
       "address's earlier update than anything of its own round or its own last update "
       "earns nothing [FED-REWARD.12], and round weights are capped at the round's median "
       "[FED-REWARD.13]",
    5: "members vote each end-ballot participant's leave-one-out improvement divided "
       "among the participants whose job sums are near-copies of its own [FED-REWARD.14]",
    6: "a federated job may name its cohort, the only addresses that may commit updates "
       "to it [FED-SPEC.4] [TX-FED.2] [TX-FED.12]",
}
"""[BLOCK-VERSION.2] Every version this software can validate and produce blocks for."""

MAX_PROTOCOL_VERSION = max(SUPPORTED_PROTOCOL_VERSIONS)
"""The newest version this software knows."""

MAX_PLANNED_VERSION = 65_535
"""[UPGRADE-PLAN.1] A plan may name a version up to this, known here or not: an upgrade is
scheduled by nodes that still run the old software, which must accept the plan to halt at it."""

UPGRADE_MIN_DELAY = 10
"""[UPGRADE-PLAN.2] A plan passing in block h may take effect no earlier than h + this many
heights: operators need the heights in between to install the new software, and a plan that
passed can never take effect in the block that passes it."""

MEMO_VERSION = 2
"""[TX-TRANSFER.2] The first version whose transfers may carry a memo."""

CENTERED_CLIP_VERSION = 4
"""[TX-FED.11] The first version whose federated jobs may name ``centered_clip``."""

REPLAY_VERSION = 4
"""[FED-REWARD.10] [FED-REWARD.11] The first version under which members leave replays
out of a round and judge near-copies on running sums."""

JOB_COPY_VERSION = 5
"""[FED-REWARD.14] The first version under which members divide a leave-one-out improvement
among copies over the job."""

COHORT_VERSION = 6
"""[TX-FED.12] The first version whose federated jobs may name a cohort [FED-SPEC.4]."""
