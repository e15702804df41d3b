"""A plugin module that cannot be imported (to test that it is skipped with a warning)."""

raise ImportError("toy_acme_plugin.broken needs a package that is not installed")
