"""The database side: engines, migrations, locks, the run ledger, key loading, key
versions and daily spend."""
