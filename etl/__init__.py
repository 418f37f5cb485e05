"""keyledger: an exact, queryable ledger of every OpenRouter API key and its spend."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("keyledger")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
