"""The operator's operations: providers, models, keys, limits, mints, withdrawals, admin tokens and the
dashboard password.

The admin API (``routstr.api.admin*``), the dashboard (``routstr.admin``) and the ``routstr`` command
call the same functions here, so one rule has one place. They take the ``Node`` (or a database
connection) and plain values, return plain data, and raise the node's errors (``core.errors``) that
each face shows its own way; nothing here knows HTTP.
"""
