"""routstr: sell LLM access for Bitcoin (Cashu eCash)."""

__version__ = "0.1.0"
