"""The OpenRouter management API side: HTTP client, paging, parsing of its JSON."""
