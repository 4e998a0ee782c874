"""Configuration from the environment and an optional ``.env`` file.

Names follow Routstr Core where they exist, so an operator can switch nodes keeping their ``.env``.
Anything wrong stops start-up with one line saying what to fix (``ConfigError``).

``settings``: the ``Settings`` dataclass, whose field defaults are the only place a default is written
(``DEFAULTS``); ``env``: reading one variable; ``files``: the providers and pricing files; ``load``:
``load_settings``, the environment read into ``Settings``.
"""

from routstr.config.files import load_price_book, load_providers
from routstr.config.load import load_settings
from routstr.config.settings import (
    DEFAULTS,
    NO_PROVIDER,
    WORKER_ENV,
    Settings,
    normalise_database_url,
)
from routstr.core.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "NO_PROVIDER",
    "WORKER_ENV",
    "ConfigError",
    "Settings",
    "load_price_book",
    "load_providers",
    "load_settings",
    "normalise_database_url",
]
