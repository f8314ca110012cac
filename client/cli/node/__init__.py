"""``learningchain node ...``: start a node, make a node directory to join a graph."""
