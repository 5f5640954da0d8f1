"""Schakel server: the aiohttp I/O shell around ``schakel.protocol``."""
