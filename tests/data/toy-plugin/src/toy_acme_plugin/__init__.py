"""A toy acme-core plugin: a thread-pool executor and a JSON store."""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from acme_core import hookimpl
from acme_core.fileio import write_bytes_atomic
from acme_core.store import BaseStore


class ToyThreads(ThreadPoolExecutor):
    name = "toy-threads"

    def __init__(self, n_workers="auto", max_workers=3):
        super().__init__(max_workers=max_workers if n_workers == "auto" else n_workers)


class JSONWriter:
    def __init__(self, directory, func_name):
        self.directory = directory
        self.func_name = func_name

    def write(self, task_id, value):
        path = Path(self.directory) / f"{self.func_name}_{task_id}.json"
        write_bytes_atomic(path, json.dumps(value).encode())
        return str(path)


class JSONStore(BaseStore):
    name = "toy-json"

    def __init__(self, indent=None):
        super().__init__()
        self.indent = indent

    def prepare(self, run):
        super().prepare(run)
        os.makedirs(run.output_dir, exist_ok=True)

    def writer(self):
        return JSONWriter(str(self.run.output_dir), self.run.func_name)

    def existing(self):
        found = {}
        for i in range(self.run.n_calls):
            path = Path(self.run.output_dir) / f"{self.run.func_name}_{i}.json"
            if path.is_file():
                found[i] = str(path)
        return found

    @classmethod
    def read(cls, run_dir, manifest):
        out = []
        for i in range(manifest["n_calls"]):
            with open(Path(run_dir) / f"{manifest['func_name']}_{i}.json") as fh:
                out.append(json.load(fh))
        return out


@hookimpl
def acme_register_executors(register):
    register(ToyThreads)


@hookimpl
def acme_register_stores(register):
    register(JSONStore)
