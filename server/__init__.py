"""Schakel server: the aiohttp I/O shell around protocol/ (arrives with issue 3)."""
