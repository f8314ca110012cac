"""LearningChain p2p: authenticated transport, gossip, block sync, blob transfer."""
