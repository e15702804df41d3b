"""Job-array backends: ``"slurm-array"`` and ``"sge-array"``; runs that outlive the driver.

The calls of a run go into the run directory once (function and shared
arguments in one file, per-call arguments in one chunk file per element, all
signed, see :mod:`acme_core.signed`); then one array job per at most
``MaxArraySize`` elements (``max_aj_tasks`` on SGE) runs them, each element a
chunk of calls through the same worker-side code and stores as the dask
backends (:mod:`acme_core.element`). No scheduler process lives in the driver:
``pmap.submit()`` returns once the arrays are queued, and
``ParallelMap.attach(output_dir)`` or ``acme wait`` collects the run later. The
core drives all of that through the generic capability
:class:`acme_core.executor.RunsDetached` (:mod:`acme_core.detached`); this
package only submits, queries and cancels arrays.

Why not submitit: its ``map_array`` pickles one job per call and its result
files are pickles the driver loads (our rule: nothing from the run directory is
unpickled by the driver, and the elements verify what they unpickle); it has no
SGE, and its open issues are the ones this design avoids: arrays larger than
``MaxArraySize`` fail (facebookincubator/submitit#1624), its polling of
``sacct`` per job overloads ``slurmctld`` (#1659, #1759). Writing the
``sbatch``/``squeue``/``scancel`` calls ourselves is a few dozen lines.

PBS: the CI's PBS is Slurm's Torque wrappers over SLURM (``qsub`` without job
arrays' ``-J``), so no ``pbs-array`` is offered: it could not be tested.
"""

from acme_backends.arrays.base import ArrayExecutor
from acme_backends.arrays.sge import SgeArrayExecutor
from acme_backends.arrays.slurm import SlurmArrayExecutor

__all__ = ["ArrayExecutor", "SgeArrayExecutor", "SlurmArrayExecutor"]
