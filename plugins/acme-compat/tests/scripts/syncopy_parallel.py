"""Syncopy's parallel computations (its ParallelMap path) against its sequential ones.

Run by tests/test_compat_syncopy.py in a scratch virtual environment holding
esi-syncopy 2023.9, acme-core, acme-esi and acme-compat. Prints one line
``REPORT <json>``: per analysis the shapes, whether the parallel result equals the
sequential one (``numpy.allclose``) and how many ParallelMap runs it took.
"""

import json
import logging

import numpy as np


class RunCounter(logging.Handler):
    """Counts acme-core runs ("Preparing N parallel calls of `fn` ...") by function."""

    def __init__(self):
        super().__init__()
        self.runs = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Preparing"):
            self.runs.append(message.split("`")[1])


ANALYSES = {
    "mtmfft": ("freqanalysis", {"method": "mtmfft", "taper": "hann"}),
    # freq has as many entries as there are trials: Syncopy keeps it whole via pmap.kwargv
    "bandpass": ("preprocessing", {"filter_class": "but", "filter_type": "bp",
                                   "freq": [30, 50], "order": 4}),
    "coherence": ("connectivityanalysis", {"method": "coh"}),
}


def values(spy, function, data, parallel, options):
    """The result's array (the Syncopy object must live while its HDF5 file is read)."""
    result = getattr(spy, function)(data, parallel=parallel, **options)
    return result.data[()]


def compare(spy, data, name, counter):
    function, options = ANALYSES[name]
    sequential = values(spy, function, data, False, options)
    before = len(counter.runs)
    parallel = values(spy, function, data, True, options)
    return {"shapes": [list(sequential.shape), list(parallel.shape)],
            "allclose": bool(np.allclose(sequential, parallel)),
            "finite": bool(np.isfinite(sequential).all()),
            "nonzero": bool(np.abs(sequential).max() > 0),
            "runs": counter.runs[before:]}


def main():
    import acme
    import syncopy as spy
    from syncopy import synthdata
    from syncopy.shared import computational_routine

    counter = RunCounter()
    logging.getLogger("acme").addHandler(counter)
    report = {"syncopy": spy.__version__, "acme": acme.__version__,
              "uses_acme": bool(spy.__acme__),
              "parallelmap_is_acmes": computational_routine.ParallelMap is acme.ParallelMap}
    client = acme.local_cluster_setup(n_workers=2, interactive=False)
    try:
        data = synthdata.white_noise(nTrials=2, nChannels=4, nSamples=1000, samplerate=1000,
                                     seed=42)
        raw = data.data[()]
        for name in ANALYSES:
            report[name] = compare(spy, data, name, counter)
        filtered = values(spy, "preprocessing", data, False, ANALYSES["bandpass"][1])
        report["bandpass"]["filters"] = not np.allclose(filtered, raw)
    finally:
        acme.cluster_cleanup(client)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
