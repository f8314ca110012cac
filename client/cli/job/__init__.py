"""``learningchain job ...``: submit, watch, view, describe, and train/v3's holdout duties."""
