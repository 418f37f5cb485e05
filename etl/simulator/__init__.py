"""A fake of the OpenRouter management API for tests, the demo and benchmarks."""
