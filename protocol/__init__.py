"""Schakel protocol core: pure, sans-I/O (docs/protocol.md)."""
