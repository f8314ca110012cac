"""The HTTP API over federated jobs [API-FED.*]: routes, JSON views of the bodies,
the OpenAPI paths (protocol_spec/api.md §8)."""
