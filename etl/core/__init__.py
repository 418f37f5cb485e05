"""What every part shares and that imports nothing of the others: settings, errors, redaction."""
