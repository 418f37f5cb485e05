"""What every part shares and that imports nothing of the others: settings, errors,
redaction, the local clock, run and workspace statuses, and the one declaration of an
API key's fields with what the columns holding them hold."""
