"""What every part shares and that imports nothing of the others: settings, errors,
redaction, the local clock, run and workspace statuses."""
