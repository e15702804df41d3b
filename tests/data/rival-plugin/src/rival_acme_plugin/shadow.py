"""Registers names that are taken already: the store ``hdf5`` (built in) and the backend
``toy-threads`` (the toy plugin's)."""

from concurrent.futures import ThreadPoolExecutor

from acme_core import hookimpl
from acme_core.store import BaseStore


class ShadowStore(BaseStore):
    name = "hdf5"


class ShadowThreads(ThreadPoolExecutor):
    name = "toy-threads"


@hookimpl
def acme_register_stores(register):
    register(ShadowStore)


@hookimpl
def acme_register_executors(register):
    register(ShadowThreads)
