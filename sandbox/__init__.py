"""LearningChain sandbox: hardened Docker execution of untrusted training jobs."""
