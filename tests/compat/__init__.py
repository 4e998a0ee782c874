"""Compatibility tests: what Routstr's own clients send and read, replayed against a real node."""
