"""Shared fixtures. Every random choice comes from a logged seed."""
