"""Plugins with the mistakes plugin authors make (the test suite checks they are reported)."""
