"""State sync [STATE-CONTENT.*] [STATE-ROOT.2] [SNAP-*]: what lets a node start from a
recent height, trusting only the genesis (protocol_spec/state.md §8, wire.md)."""
