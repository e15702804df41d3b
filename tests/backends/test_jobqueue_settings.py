"""The job-queue keywords, checked and resolved without a scheduler.

``resolve()`` runs against the SLURM of the CI machine as recorded in
``tests/data/schedulers/slurm`` (partitions ``debug``, ``8GBXS``, ... on a node with
2 CPUs and 24105 MB), through a :class:`SlurmExecutor` subclass whose scheduler
wrapper answers from those files. Nothing here submits a job.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from acme_backends.jobqueue import (
    JobQueueExecutor,
    PbsExecutor,
    SgeExecutor,
    SlurmExecutor,
    pbs_cluster_setup,
    resolve,
    sge_cluster_setup,
    slurm_cluster_setup,
)
from acme_backends.jobqueue._djq_hooks import JobRecord
from acme_backends.jobqueue.settings import JobQueueRequest, unalias
from acme_backends.jobqueue.startup import situation
from acme_backends.schedulers import PbsCLI, SlurmCLI
from acme_core.errors import ArgumentTypeError, ArgumentValueError, PluginError

SLURM = Path(__file__).resolve().parents[1] / "data" / "schedulers" / "slurm"


def recorded(name: str) -> str:
    return (SLURM / name).read_text()


class RecordedSlurmCLI(SlurmCLI):
    """SLURM as recorded: every command answered from tests/data/schedulers/slurm."""

    calls: list[tuple[str, ...]] = []
    answers = {
        ("sinfo", "-h", "-o", "%P"): "sinfo-partitions.txt",
        ("squeue", "-h", "-o", "%i %T %r", "-j", "147,148,149,150,151"): "squeue-states.txt",
        **{("sinfo", "-h", "-N", "-o", "%c %m", "-p", p): "sinfo-nodes.txt"
           for p in ("debug", "8GBXS", "8GBS", "16GBXS", "16GBS")},
        **{("scontrol", "-o", "show", "partition", p): f"scontrol-partition-{p}.txt"
           for p in ("debug", "8GBXS", "16GBS")},
        **{("sinfo", "-h", "-N", "-o", "%G", "-p", p): "sinfo-gres.txt"
           for p in ("debug", "8GBXS", "8GBS", "16GBXS", "16GBS")},
    }

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def run(cls, cmd):
        cls.calls.append(tuple(cmd))
        return recorded(cls.answers[tuple(cmd)])


class RecordedSlurm(SlurmExecutor):
    cli = RecordedSlurmCLI


class GpuSlurmCLI(RecordedSlurmCLI):
    """The recorded SLURM with the GPU nodes of handwritten-sinfo-gres.txt (4 GPUs at most)."""

    answers = {**RecordedSlurmCLI.answers,
               ("sinfo", "-h", "-N", "-o", "%G", "-p", "debug"): "handwritten-sinfo-gres.txt"}


class GpuSlurm(SlurmExecutor):
    cli = GpuSlurmCLI


@pytest.fixture(autouse=True)
def fresh_calls():
    RecordedSlurmCLI.calls = []


# ------------------------------------------------------------------ resolve
def test_auto_resolves_to_the_default_partition_and_its_memory():
    settings = resolve(RecordedSlurm)
    assert settings.queue == "debug"
    # debug has no default memory per CPU: 1 GB (decimal) per core, in MiB
    assert settings.memory == "953MiB" and settings.memory_mib == 953
    assert (settings.n_workers, settings.cores, settings.processes) == (1, 1, 1)
    assert settings.security is True and settings.extra == {}
    settings = resolve(RecordedSlurm, partition="8GBXS", mem_cushion=100, n_cores=1)
    assert settings.memory == "7900MiB"  # the partition's 8000 MB per core, less the cushion


def test_the_request_is_checked_against_the_partition_and_its_node():
    with pytest.raises(ArgumentValueError, match="above the limit of partition 8GBXS") as err:
        resolve(RecordedSlurm, partition="8GBXS", mem_per_worker="10GB")
    assert err.value.parameter == "mem_per_worker"
    with pytest.raises(ArgumentValueError, match="more than any node of partition debug has"):
        resolve(RecordedSlurm, mem_per_worker="100GB")
    with pytest.raises(ArgumentValueError, match="`cores_per_worker` 64 is more than any node"):
        resolve(RecordedSlurm, cores_per_worker=64)
    with pytest.raises(ArgumentValueError, match="Invalid partition selection '8gbxs'.*"
                                                 "Did you mean '8GBXS'"):
        resolve(RecordedSlurm, partition="8gbxs")


def test_without_check_resources_nothing_is_asked():
    settings = resolve(RecordedSlurm, partition="8GBXS", mem_per_worker="10GB",
                       check_resources=False)
    assert settings.queue == "8GBXS" and settings.memory_mib == 9537
    assert RecordedSlurmCLI.calls == []


# ------------------------------------------------------------------ resources
def test_resources_are_cores_and_memory_per_worker():
    settings = resolve(RecordedSlurm, resources={"cores": 2, "mem": "2GB"})
    assert (settings.cores, settings.memory, settings.gpus) == (2, "2GB", 0)
    # given both ways, they have to agree
    assert resolve(RecordedSlurm, resources={"mem": "2GB"}, mem_per_worker="2GB").memory == "2GB"
    with pytest.raises(ArgumentValueError, match="disagree") as err:
        resolve(RecordedSlurm, resources={"mem": "2GB"}, mem_per_worker="3GB")
    assert err.value.parameter == "resources"
    with pytest.raises(ArgumentValueError, match="`cores_per_worker` 64 is more than any node"):
        resolve(RecordedSlurm, resources={"cores": 64})


def test_gpus_are_refused_on_a_partition_without_them_before_anything_is_submitted():
    with pytest.raises(ArgumentValueError, match=r"`resources\['gpus'\]` 1: partition debug "
                                                 "has no GPUs") as err:
        resolve(RecordedSlurm, resources={"gpus": 1})
    assert err.value.parameter == "resources"
    assert ("sinfo", "-h", "-N", "-o", "%G", "-p", "debug") in RecordedSlurmCLI.calls
    assert not any(cmd[0] == "sbatch" for cmd in RecordedSlurmCLI.calls)
    with pytest.raises(ArgumentValueError, match="at most 4 GPUs per node"):
        resolve(GpuSlurm, resources={"gpus": 5})
    assert resolve(GpuSlurm, resources={"gpus": 4}).gpus == 4


def test_gpus_become_a_gres_line_in_the_job_script(tmp_path):
    from acme_backends.jobqueue._djq_hooks import cluster_classes
    from acme_backends.jobqueue.startup import cluster_keywords

    settings = resolve(GpuSlurm, resources={"gpus": 2, "cores": 2}, security=False,
                       host="127.0.0.1", dashboard_address=":0")
    assert settings.job_extra == ("--gres=gpu:2",)
    cluster_cls, job_cls = cluster_classes(GpuSlurm)
    cluster = cluster_cls(**cluster_keywords(GpuSlurm, settings, tmp_path, job_cls))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:2\n" in script and "#SBATCH --cpus-per-task=2\n" in script


class OfflinePbsCLI(PbsCLI):
    """PBS that is "there" but never asked (check_resources=False)."""

    @classmethod
    def available(cls) -> bool:
        return True


class OfflinePbs(PbsExecutor):
    cli = OfflinePbsCLI


def test_pbs_gpus_go_into_the_select_statement(tmp_path):
    """PBS Pro refuses ``-l ngpus`` next to ``-l select``: the GPUs are part of the select."""
    from acme_backends.jobqueue._djq_hooks import cluster_classes
    from acme_backends.jobqueue.startup import cluster_keywords

    settings = resolve(OfflinePbs, resources={"gpus": 1, "cores": 2, "mem": "2GB"},
                       partition="workq", check_resources=False, security=False, host="127.0.0.1",
                       dashboard_address=":0")
    assert settings.job_extra == ()
    cluster_cls, job_cls = cluster_classes(OfflinePbs)
    cluster = cluster_cls(**cluster_keywords(OfflinePbs, settings, tmp_path, job_cls))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -l select=1:ncpus=2:mem=1908mb:ngpus=1\n" in script
    assert script.count("select=") == 1


def test_n_workers_auto_is_one_per_call_up_to_a_limit():
    assert resolve(RecordedSlurm, n_workers="auto", n_calls=7).n_workers == 7
    assert resolve(RecordedSlurm, n_workers="auto", n_calls=5000).n_workers == 100
    assert resolve(RecordedSlurm, n_workers="auto").n_workers == 1
    with pytest.raises(ArgumentValueError, match="'auto' or an integer"):
        resolve(RecordedSlurm, n_workers="many")


@pytest.mark.parametrize(("keywords", "error", "parameter"), [
    ({"setup_timeout": -1}, ArgumentValueError, "timeout"),
    ({"timeout": "soon"}, ArgumentTypeError, "timeout"),
    ({"setup_interactive": "yes"}, ArgumentTypeError, "interactive"),
    ({"processes_per_worker": 2}, ArgumentValueError, "processes_per_worker"),
    ({"job_extra": "--qos=long"}, ArgumentTypeError, "job_extra"),
    ({"job_extra": [3]}, ArgumentTypeError, "job_extra"),
    ({"security": "on"}, ArgumentTypeError, "security"),
    ({"walltime": 60}, ArgumentTypeError, "walltime"),
    ({"dashboard_address": 8787}, ArgumentTypeError, "dashboard_address"),
    ({"partition": 8}, ArgumentTypeError, "partition"),
    ({"mem_per_worker": 2}, ArgumentTypeError, "mem_per_worker"),
    ({"mem_per_worker": "lots"}, ArgumentValueError, "mem_per_worker"),
    ({"memory": "1GB"}, ArgumentTypeError, "memory"),  # dask-jobqueue's name, set by acme-core
    ({"walltim": "1:00:00"}, ArgumentTypeError, "walltim"),
])
def test_bad_keywords_are_refused_before_the_scheduler_is_asked(keywords, error, parameter):
    with pytest.raises(error) as err:
        resolve(RecordedSlurm, **keywords)
    assert err.value.parameter == parameter
    assert RecordedSlurmCLI.calls == []
    with pytest.raises(error):  # ParallelMap's early check says the same
        RecordedSlurm.check_options(keywords)


def test_acme_aliases_are_mapped_once():
    assert unalias({"timeout": 5, "setup_timeout": 60, "interactive": True}) == {
        "setup_timeout": 5, "setup_interactive": True}
    assert unalias({"queue": "8GBXS", "partition": "auto"}) == {"partition": "8GBXS"}
    assert unalias({"n_cores": 2, "cores_per_worker": None}) == {"cores_per_worker": 2}
    with pytest.raises(ArgumentValueError, match="`partition` or `queue`, not both"):
        unalias({"queue": "8GBXS", "partition": "debug"})
    with pytest.raises(ArgumentValueError, match="`cores_per_worker` or ACME's `n_cores`"):
        unalias({"n_cores": 2, "cores_per_worker": 4})


def test_request_defaults_are_the_executors():
    """JobQueueRequest holds the defaults resolve() fills in: they must be the signature's."""
    defaults = {f: getattr(JobQueueRequest(), f) for f in JobQueueRequest.__dataclass_fields__}
    for name, param in inspect.signature(JobQueueExecutor.__init__).parameters.items():
        if param.default is not param.empty and name in defaults:
            assert defaults[name] == param.default, name


def test_setups_take_the_same_keywords_as_before():
    """ACME's positional order, and n_cores/partition as synonyms on PBS and SGE."""
    assert list(inspect.signature(slurm_cluster_setup).parameters)[:11] == [
        "partition", "n_cores", "n_workers", "processes_per_worker", "mem_per_worker",
        "n_workers_startup", "timeout", "interactive", "interactive_wait", "start_client",
        "job_extra"]
    for setup in (pbs_cluster_setup, sge_cluster_setup):
        params = inspect.signature(setup).parameters
        assert list(params)[:3] == ["queue", "n_workers", "mem_per_worker"]
        assert params["cores_per_worker"].default is None  # so n_cores=4 alone is no conflict


# ------------------------------------------------------------------ documented once
@pytest.mark.parametrize("documented", [JobQueueExecutor, SlurmExecutor, PbsExecutor,
                                        SgeExecutor, slurm_cluster_setup, pbs_cluster_setup,
                                        sge_cluster_setup])
def test_every_keyword_is_documented(documented):
    doc = documented.__doc__
    target = documented.__init__ if isinstance(documented, type) else documented
    for name, param in inspect.signature(target).parameters.items():
        if name == "self":
            continue
        entry = f"**{name}" if param.kind is param.VAR_KEYWORD else name
        assert f"\n    {entry} :" in doc or f"\n    {entry}\n" in doc or f" {entry}, " in doc \
            or f", {entry} :" in doc, (documented, name)
    assert "{" not in doc  # every placeholder was filled


def test_scheduler_words_reach_the_docstrings():
    assert "``#SBATCH`` options" in slurm_cluster_setup.__doc__
    assert "``#$`` options" in sge_cluster_setup.__doc__
    assert "dask_jobqueue.PBSCluster" in pbs_cluster_setup.__doc__
    assert "The partition the jobs go to" in SlurmExecutor.__doc__


# ------------------------------------------------------------------ a backend's author
def test_a_subclass_without_cluster_class_is_told_to_its_author(in_tmp):
    class SiteExecutor(JobQueueExecutor):
        name = "site"
        cli = RecordedSlurmCLI

    for attempt in (lambda: SiteExecutor(), lambda: SiteExecutor.check_options({}),
                    lambda: resolve(SiteExecutor)):
        with pytest.raises(PluginError, match="To the author of SiteExecutor: set") as err:
            attempt()
        assert "`cluster_class`" in str(err.value)
    assert RecordedSlurmCLI.calls == []  # nothing was asked, nothing submitted

    from acme_core import ParallelMap

    with pytest.raises(PluginError, match="cluster_class"):
        ParallelMap(abs, [1, 2], backend=SiteExecutor)


def test_a_cluster_class_dask_jobqueue_does_not_have_is_the_authors_too():
    class Typo(SlurmExecutor):
        name = "typo"
        cluster_class = "SLURMClustr"

    with pytest.raises(PluginError, match=r"Typo \(backend 'typo'\).*'SLURMClustr'.*its author"):
        Typo.check_options({})


def test_a_subclass_without_scheduler_wrapper_is_refused():
    class NoCli(JobQueueExecutor):
        name = "nocli"
        cluster_class = "SLURMCluster"

    with pytest.raises(PluginError, match="`cli` \\(a SchedulerCLI subclass"):
        NoCli.check_options({})


# ------------------------------------------------------------------ why workers are missing
def test_situation_says_why_in_words():
    record = JobRecord()
    record.job_ids = ["147", "148", "149", "150", "151"]
    record.failures = ["sbatch: error: Batch job submission failed"]
    text = situation(RecordedSlurmCLI, record, up=0, wanted=5, log_dir=Path("/logs"))
    assert text.startswith("Only 0 of 5 workers came up.")
    assert "149 (pending, MaxMemPerLimit: the job asks for more memory than the partition " \
           "allows; it will never start)" in text
    assert "148 (pending, Resources: waiting for free resources" in text
    assert "150 (pending, JobHeldUser" in text
    assert "Jobs 147 are running but their workers have not connected yet" in text
    assert "Jobs 151 already ended" in text and "/logs" in text
    assert "1 submission(s) failed: sbatch: error" in text
