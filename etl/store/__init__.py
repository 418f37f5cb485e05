"""The database side: engines, migrations, locks, the run ledger, key loading, history."""
