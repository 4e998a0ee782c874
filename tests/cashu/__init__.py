"""Tests of routstr.cashu (the Cashu protocol layer)."""
