"""Prediction requests (issue 19): the pure rules [PRED-*].

A settled job's model is deployed (``model``), a member asks for predictions on a
batch of rows (``request``), a lottery that no party controls draws k executors
(``lottery``), each commits to and reveals its answer (``answer``), the answers
are grouped (``agreement``) and the fee is split (``payout``); ``io`` fixes the bytes
of input and answer blobs. No I/O (despite the name: encodings only): the
ledger, the executor node and a second implementation all call these.
See protocol_spec/predict.md.
"""
