"""Translations between API dialects (pure: dicts in, dicts or bytes out)."""
