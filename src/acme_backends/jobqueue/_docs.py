"""The job-queue keywords, documented once and formatted into every docstring that takes them.

dask-jobqueue does the same with its ``job_parameters`` and ``cluster_parameters``
(``dask_jobqueue/core.py``). The backends (``JobQueueExecutor`` and the three
scheduler classes) and the cluster setups (``slurm_cluster_setup``, ...) build
their ``Parameters`` sections with :func:`parameters`; the words that differ per
scheduler (``{queue}``, ``{title}``, ``{directive}``, ``{cluster}``) come from
:data:`WORDS`.
"""

from __future__ import annotations

import textwrap

__all__ = ["KEYWORDS", "WORDS", "parameters"]

#: scheduler -> the words its docstrings use
WORDS: dict[str, dict[str, str]] = {
    "any": {"jobs": "batch jobs", "queue": "queue (partition on SLURM)", "title": "the scheduler",
            "directive": "scheduler directives (``#SBATCH``, ``#PBS`` or ``#$`` lines)",
            "cluster": "the dask-jobqueue cluster class", "example": '``["--qos=long"]``',
            "gpu_option": "``--gres=gpu:N`` on SLURM, ``-l gpu=N`` on Grid Engine, "
                          "``-l ngpus=N`` on PBS"},
    "slurm": {"jobs": "SLURM jobs", "queue": "partition", "title": "SLURM",
              "directive": "``#SBATCH`` options", "cluster": "``dask_jobqueue.SLURMCluster``",
              "example": '``["--qos=long"]``', "gpu_option": "``--gres=gpu:N``"},
    "pbs": {"jobs": "PBS jobs", "queue": "queue", "title": "PBS", "directive": "``#PBS`` options",
            "cluster": "``dask_jobqueue.PBSCluster``", "example": '``["-A myproject"]``',
            "gpu_option": "``-l ngpus=N``"},
    "sge": {"jobs": "Grid Engine jobs", "queue": "queue", "title": "Grid Engine",
            "directive": "``#$`` options", "cluster": "``dask_jobqueue.SGECluster``",
            "example": '``["-P myproject"]``', "gpu_option": "``-l gpu=N``"},
}

#: one numpydoc entry per keyword; ``name:variant`` where the backend and the setups differ
KEYWORDS: dict[str, str] = {
    "partition": """\
partition : str
    The {queue} the jobs go to; ``"auto"``: {title}'s default. A name {title}
    does not have is a ``ValueError`` listing the ones it has.""",
    "queue": """\
queue : str, optional
    Same as ``partition`` (giving both, differently, is an error).""",
    "queue:first": """\
queue : str
    The queue the jobs go to; ``"auto"``: {title}'s default. A name {title} does not
    have is a ``ValueError`` listing the ones it has.""",
    "partition:alias": """\
partition : str, optional
    Same as ``queue`` (giving both, differently, is an error).""",
    "n_workers:backend": """\
n_workers : int or "auto"
    Number of worker jobs (one dask worker each); ``"auto"``: ``n_calls`` when
    known (ACME's one job per call), at most ``max_auto_workers``, else 1.""",
    "n_workers:setup": """\
n_workers : int
    Number of worker jobs.""",
    "mem_per_worker": """\
mem_per_worker : str
    Memory per job, e.g. ``"2GB"``; ``"auto"``: the default memory per core of the
    {queue} times ``cores_per_worker`` (1 GB per core without a default), less
    ``mem_cushion``. More than any node has, or than the {queue} allows, is a
    ``ValueError`` before anything is submitted.""",
    "setup_timeout": """\
setup_timeout : float
    Seconds to wait for the workers. When fewer came up, the message says how many
    and {title}'s reason for the others; with at least ``n_workers_startup`` up the
    run goes on with them, with none it is a ``TimeoutError``.""",
    "setup_interactive": """\
setup_interactive : bool
    Ask whether to keep waiting, abort or continue when workers are missing (only
    when someone can answer: a terminal on stdin).""",
    "timeout:alias": """\
timeout, interactive : optional
    ACME's names for ``setup_timeout`` and ``setup_interactive``; they win when given.""",
    "timeout": """\
timeout : float
    Seconds to wait for the workers. When fewer came up, the log says how many and
    {title}'s reason for the others; with at least ``n_workers_startup`` up the run
    goes on with them, with none it is a ``TimeoutError``.""",
    "interactive": """\
interactive : bool
    Ask whether to keep waiting, abort or continue when workers are missing (only
    when someone can answer: a terminal on stdin).""",
    "n_cores": """\
n_cores : int, optional
    ACME's name for ``cores_per_worker``.""",
    "cores_per_worker": """\
cores_per_worker : int, optional
    Cores per job (threads of its worker processes); default 1.""",
    "processes_per_worker": """\
processes_per_worker : int
    dask worker processes per job (``cores_per_worker`` threads are split among them).""",
    "n_workers_startup": """\
n_workers_startup : int
    After the timeout, go on when at least this many workers are up (default 1).""",
    "interactive_wait": """\
interactive_wait : float
    Seconds the interactive question waits for an answer before taking its default.""",
    "start_client": """\
start_client : bool
    Return a ``distributed.Client`` (default) or the cluster object.""",
    "job_extra": """\
job_extra : list of str
    Extra {directive}, e.g. {example}.""",
    "walltime": """\
walltime : str, optional
    Job time limit; default none, so the limit of the {queue} applies (ACME's choice).""",
    "log_directory": """\
log_directory : str, optional
    Directory for the job logs; default ``<run_dir>/job-logs`` when there is a run
    directory, else ``~/.acme/job-logs/<user>_<backend>_<time>``. Never the current
    directory.""",
    "run_dir": """\
run_dir : str, optional
    The run directory of the ParallelMap using this backend (ParallelMap passes it).""",
    "security": """\
security : bool or distributed.security.Security
    ``True`` (default): TLS with temporary credentials made for this cluster, so
    only its workers can connect; ``False``: plain TCP (anyone on the network who
    finds the port can run code as you); or a ``Security`` object.""",
    "host": """\
host, interface : str, optional
    Address / network interface the scheduler listens on (workers connect there);
    ``interface`` also applies to the workers. For login nodes with several networks.""",
    "dashboard_address": """\
dashboard_address : str
    Where the dashboard listens; default ``"127.0.0.1:0"`` (this machine only, a free
    port: use an ssh tunnel).""",
    "check_resources": """\
check_resources : bool
    Check {queue}, memory and cores with {title} before submitting (default). Turn
    off when the login node cannot see the compute nodes.""",
    "reuse": """\
reuse : bool
    Attach to a running client of the same kind of cluster (with workers) instead of
    starting another one, as ACME does.""",
    "n_calls": """\
n_calls : int, optional
    Number of calls the run will make (sizes ``n_workers="auto"``; ParallelMap passes it).""",
    "mem_cushion": """\
mem_cushion : float
    Megabytes kept free below the memory of the {queue} when ``mem_per_worker`` is
    ``"auto"`` (ACME's keyword).""",
    "resources": """\
resources : dict, optional
    ParallelMap's ``resources``, a dict with any of ``cores`` (an int), ``gpus`` (an
    int) and ``mem`` (e.g. ``"8GB"``). ``cores`` and ``mem`` are ``cores_per_worker`` and ``mem_per_worker``;
    ``gpus`` asks {title} for GPUs per job ({gpu_option}). A {queue} whose nodes have
    fewer GPUs is a ``ValueError`` before anything is submitted.""",
    "retry_memory_factor": """\
retry_memory_factor : float, optional
    A call that failed by exceeding its worker's memory runs again on a worker with
    this many times more memory (one more job, up to the largest node of the
    {queue}); off by default.""",
    "jobqueue_options": """\
**jobqueue_options
    Any other keyword of {cluster} (``account``, ``worker_extra_args``,
    ``job_script_prologue``, ``scheduler_options``, ...). An unknown keyword is a
    ``TypeError`` before anything is submitted.""",
}

#: the keywords every job-queue entry point shares, after its own first ones
SHARED = ("processes_per_worker", "n_workers_startup", "interactive_wait", "job_extra",
          "walltime", "log_directory", "security", "host", "dashboard_address",
          "check_resources", "reuse", "mem_cushion", "jobqueue_options")

#: the backends' Parameters, in signature order
BACKEND = ("partition", "n_workers:backend", "mem_per_worker", "setup_timeout",
           "setup_interactive", "cores_per_worker", "queue", "timeout:alias", *SHARED[:-1],
           "run_dir", "n_calls", "resources", "retry_memory_factor", SHARED[-1])

#: slurm_cluster_setup's Parameters (ACME's order first)
SLURM_SETUP = ("partition", "n_cores", "n_workers:setup", "processes_per_worker",
               "mem_per_worker", "n_workers_startup", "timeout", "interactive",
               "interactive_wait", "start_client", "job_extra", "cores_per_worker", "queue",
               *(k for k in SHARED if k not in {"processes_per_worker", "n_workers_startup",
                                                 "interactive_wait", "job_extra"}))

#: pbs_cluster_setup's and sge_cluster_setup's Parameters
QUEUE_SETUP = ("queue:first", "n_workers:setup", "mem_per_worker", "cores_per_worker",
               "timeout", "interactive", "interactive_wait", "start_client", "job_extra",
               "partition:alias", "n_cores",
               *(k for k in SHARED if k not in {"interactive_wait", "job_extra"}))


def _entry(text: str) -> str:
    """One entry, its description refilled (the scheduler's words change its line lengths)."""
    head, _, body = text.partition("\n")
    return head + "\n" + textwrap.fill(" ".join(body.split()), width=88,
                                       initial_indent="    ", subsequent_indent="    ")


def parameters(names: tuple[str, ...], scheduler: str) -> str:
    """The numpydoc entries of ``names`` for ``scheduler``, to format into a docstring.

    The first line has no indentation (the template's ``{parameters}`` stands
    where it goes); the others are indented by 4, as in a function's docstring.
    """
    words = WORDS[scheduler]
    text = "\n".join(_entry(KEYWORDS[name].format(**words)) for name in names)
    return textwrap.indent(text, "    ").lstrip()
