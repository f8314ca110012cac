"""What the bench scripts share; not benches themselves (``make bench`` runs ``bench/*.py``)."""
