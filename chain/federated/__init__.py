"""Federated jobs (issue 18): the pure, deterministic rules [FED-*].

Updates and models are vectors of signed integers at a fixed scale, so every
aggregation, model step and reward is exact integer arithmetic: the same bytes
on every machine, recomputable by any member. One module per job:

- ``fixed``: the fixed-point scale, rounding, clamping and ranges [FED-QUANT.1-4]
- ``blobs``: the wire form of update and model blobs, the model hash [FED-QUANT.5] [FED-MODEL.1-2]
- ``robust``: coordinate-wise trimmed mean and median [FED-AGG.2-3]
- ``fltrust``: trust against the owner's reference update, normalised weighted mean
  [FED-AGG.4-6]
- ``rounds``: one round's aggregate, weights and outliers, the model step, leave-one-out
  models [FED-AGG.1] [FED-AGG.7-8] [FED-MODEL.3] [FED-REWARD.2]
- ``rewards``: the bounty split [FED-REWARD.*]
- ``spec``: the ``federated/v1`` job kind's own fields [FED-SPEC.*]
- ``masking``, ``shamir``: private mode's masked sums and seed shares [FED-PRIV.*]

No I/O and no floating point in any rule; see protocol_spec/federated.md.
"""
