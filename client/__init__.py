"""Schakel client: the partner library and the `schakel` command line."""
