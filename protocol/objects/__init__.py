"""Wire objects of the Schakel protocol (docs/protocol.md §4)."""
