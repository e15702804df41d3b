"""A hook whose name is misspelt: ``acme_register_executor`` (singular) is never called."""

from concurrent.futures import ThreadPoolExecutor

from acme_core import hookimpl


class NeverRegistered(ThreadPoolExecutor):
    name = "never-registered"


@hookimpl
def acme_register_executor(register):
    register(NeverRegistered)
