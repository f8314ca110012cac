"""LearningChain client: node runner, worker loop, CLI, HTTP API."""
