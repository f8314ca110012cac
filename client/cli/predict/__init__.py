"""``learningchain predict`` and ``learningchain model``: deployed models and prediction
requests (protocol_spec/predict.md)."""
