"""What every part shares and that imports nothing of the others: settings, errors, redaction,
the one declaration of an API key's fields and what the columns holding them hold."""
