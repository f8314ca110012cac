"""The HTTP API over deployed models and prediction requests [API-PREDICT.*]: routes,
JSON views, the OpenAPI paths (protocol_spec/api.md §7)."""
