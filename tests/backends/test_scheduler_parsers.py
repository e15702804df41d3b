"""Every scheduler parser on recorded output (``tests/data/schedulers``): no scheduler needed.

The files were recorded from the SLURM, SGE and PBS shim of the CI machine
(``record.py`` there); those named ``handwritten-*`` stand for what a single-node
machine cannot show (see that directory's README). The ``*CLI`` classes are run
with :meth:`SchedulerCLI.run` answering from the files, which also checks the
command lines they run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from acme_backends.jobqueue.startup import describe_reason
from acme_backends.schedulers import (
    JobState,
    NodeLimits,
    PbsCLI,
    QueueMemory,
    Queues,
    SchedulerCLI,
    SgeCLI,
    SlurmCLI,
    mem_mb,
    pbs,
    run_command,
    sge,
    slurm,
)
from acme_core.errors import ArgumentValueError, SchedulerError

DATA = Path(__file__).resolve().parents[1] / "data" / "schedulers"


def data(name: str) -> str:
    return (DATA / name).read_text()


def replaying(cli: type[SchedulerCLI],
              answers: Mapping[tuple[str, ...], str | Exception]) -> type[SchedulerCLI]:
    """``cli`` with every command answered from ``answers``; the commands run are in ``calls``."""
    calls: list[tuple[str, ...]] = []

    class Replay(cli):
        @classmethod
        def run(cls, cmd):
            calls.append(tuple(cmd))
            answer = answers[tuple(cmd)]
            if isinstance(answer, Exception):
                raise answer
            return answer

    Replay.calls = calls
    return Replay


LOCAL_PARTITIONS = ["debug", "8GBXS", "8GBS", "16GBXS", "16GBS"]


# ------------------------------------------------------------------ shared helpers
@pytest.mark.parametrize(("text", "mb"), [
    ("23.5G", 23.5 * 1024), ("24105", 24105), ("24105mb", 24105), ("16gb", 16384),
    ("1024kb", 1), ("407.2M", 407.2), ("131813372kb", 131813372 / 1024), ("1T", 1024**2),
    ("UNLIMITED", None), ("-", None), ("1.2.3", None), ("", None),
])
def test_mem_mb(text, mb):
    assert mem_mb(text) == (pytest.approx(mb) if mb is not None else None)


def test_run_command_reports_what_failed():
    with pytest.raises(SchedulerError, match="`no-such-scheduler-tool` is not on PATH"):
        run_command(["no-such-scheduler-tool"])
    with pytest.raises(SchedulerError, match=r"exit code 3\): what went wrong"):
        run_command([sys.executable, "-c",
                     "import sys; sys.stderr.write('what went wrong'); sys.exit(3)"])
    assert run_command([sys.executable, "-c", "print('listed')"]) == "listed\n"


# ------------------------------------------------------------------ SLURM
def test_slurm_partitions():
    assert slurm.parse_partitions(data("slurm/sinfo-partitions.txt")) == Queues(
        LOCAL_PARTITIONS, "debug")
    # a partition whose nodes are in several states is printed once per state
    assert slurm.parse_partitions(data("slurm/handwritten-sinfo-partitions.txt")) == Queues(
        ["compute", "gpu", "bigmem"], "compute")


def test_slurm_node_limits():
    assert slurm.parse_node_limits(data("slurm/sinfo-nodes.txt")) == NodeLimits(2, 24105)
    assert slurm.parse_node_limits(data("slurm/sinfo-nodes-8GBXS.txt")) == NodeLimits(2, 24105)
    assert slurm.parse_node_limits(
        data("slurm/handwritten-sinfo-nodes-compute.txt")) == NodeLimits(128, 1031000)
    # sinfo folds nodes with different values into "64+"; a partition without nodes prints nothing
    assert slurm.parse_node_limits("64+ 257000+\n") == NodeLimits(64, 257000)
    assert slurm.parse_node_limits("") == NodeLimits(None, None)


def test_slurm_node_gpus():
    assert slurm.parse_node_gpus(data("slurm/sinfo-gres.txt")) == 0  # "(null)": no GRES here
    # a100:4 with sockets; gpu:2 next to mps; two GPU types on one node (2 + 1)
    assert slurm.parse_node_gpus(data("slurm/handwritten-sinfo-gres.txt")) == 4
    assert slurm.parse_node_gpus("gpu:v100:2(S:0),gpu:t4:1(S:1)\n") == 3
    assert slurm.parse_node_gpus("gpu:a100:8(S:0,1)\n") == 8  # a comma inside the sockets
    assert slurm.parse_node_gpus("mps:100\n") == 0
    assert slurm.parse_node_gpus("") == 0


@pytest.mark.parametrize(("name", "expected"), [
    ("scontrol-partition-debug.txt", QueueMemory(None, None)),  # DefMemPerNode=UNLIMITED
    ("scontrol-partition-8GBXS.txt", QueueMemory(8000, 8000)),
    ("scontrol-partition-16GBS.txt", QueueMemory(16000, 16000)),
    ("handwritten-scontrol-partition-percpu.txt", QueueMemory(None, 3900)),  # MaxMemPerCPU only
])
def test_slurm_partition_memory(name, expected):
    assert slurm.parse_partition_memory(data(f"slurm/{name}")) == expected


def test_slurm_job_states():
    assert slurm.parse_job_states(data("slurm/squeue-states.txt")) == {
        "147": JobState("RUNNING", "None"),
        "148": JobState("PENDING", "Resources"),
        "149": JobState("PENDING", "MaxMemPerLimit"),
        "150": JobState("PENDING", "JobHeldUser"),
    }
    assert slurm.parse_job_states(data("slurm/squeue-finished.txt")) == {}
    states = slurm.parse_job_states(data("slurm/handwritten-squeue-array.txt"))
    assert states["7001_1"] == JobState("RUNNING", "None")
    assert states["7001_[3-10]"] == JobState("PENDING", "Priority")
    assert states["7002"] == JobState("PENDING", "ReqNodeNotAvail, UnavailableNodes:node[01-04]")
    assert states["7004"].state == "COMPLETING"


def test_slurm_pending_reasons_in_words():
    assert describe_reason("MaxMemPerLimit").endswith("it will never start")
    assert describe_reason("(Resources)").startswith("Resources: waiting for free resources")
    # the details after the reason's name stay
    text = describe_reason("ReqNodeNotAvail, UnavailableNodes:node[01-04]")
    assert text.startswith("ReqNodeNotAvail, UnavailableNodes:node[01-04]: the requested nodes")
    assert describe_reason("SomethingNew") == "SomethingNew"
    assert describe_reason("") == "no reason given"


def test_slurm_cli_runs_the_commands_it_parses():
    cli = replaying(SlurmCLI, {
        ("sinfo", "-h", "-o", "%P"): data("slurm/sinfo-partitions.txt"),
        ("sinfo", "-h", "-N", "-o", "%c %m", "-p", "8GBXS"): data("slurm/sinfo-nodes-8GBXS.txt"),
        ("sinfo", "-h", "-N", "-o", "%c %m"): data("slurm/sinfo-nodes.txt"),
        ("scontrol", "-o", "show", "partition", "8GBXS"):
            data("slurm/scontrol-partition-8GBXS.txt"),
        ("squeue", "-h", "-o", "%i %T %r", "-j", "147,148,149,150"):
            data("slurm/squeue-states.txt"),
        ("scancel", "147", "148"): "",
    })
    assert cli.queues() == Queues(LOCAL_PARTITIONS, "debug")
    assert cli.node_limits("8GBXS") == NodeLimits(2, 24105)
    assert cli.node_limits(None) == NodeLimits(2, 24105)
    assert cli.queue_memory("8GBXS") == QueueMemory(8000, 8000)
    assert cli.queue_memory(None) == QueueMemory(None, None)  # no partition: nothing to ask
    assert len(cli.job_states(["147", "148", "149", "150"])) == 4
    assert cli.job_states([]) == {}
    cli.cancel(["147", "148"])
    cli.cancel([])
    assert cli.calls[-1] == ("scancel", "147", "148")
    assert len(cli.calls) == 6  # no command for an empty list or a missing partition


def test_slurm_job_states_of_purged_jobs_are_empty():
    """squeue fails when it knows none of the ids (recorded: exit code 1): every job is gone."""
    stderr = data("slurm/squeue-purged.stderr").splitlines()
    assert stderr[0] == "exit code 1"
    purged = SchedulerError(f"`squeue ...` failed (exit code 1): {stderr[1]}")
    cli = replaying(SlurmCLI, {("squeue", "-h", "-o", "%i %T %r", "-j", "999999"): purged,
                               ("squeue", "-h", "-o", "%i %T %r", "-j", "1"):
                                   SchedulerError("slurmctld is not responding")})
    assert cli.job_states(["999999"]) == {}
    with pytest.raises(SchedulerError, match="not responding"):  # other failures are reported
        cli.job_states(["1"])


# ------------------------------------------------------------------ SGE
def test_sge_queues():
    assert sge.parse_queues(data("sge/qconf-sql.txt")) == Queues(["all.q"], None)


def test_sge_asks_for_cores_and_memory_itself():
    """dask-jobqueue's SGE jobs ask for neither: a parallel environment and mem_free do."""
    cli = replaying(SgeCLI, {("qconf", "-spl"): data("sge/qconf-spl.txt")})
    assert cli.resource_options(1, 954, True) == ("-l mem_free=954M",)
    assert cli.resource_options(4, 3815, True) == ("-pe smp 4", "-l mem_free=3815M")
    assert cli.resource_options(4, 3815, False) == ("-pe smp 4", "-l mem_free=3815M")
    assert cli.calls == [("qconf", "-spl")]  # one core needs no parallel environment
    other = replaying(SgeCLI, {("qconf", "-spl"): "make\nmpi\n"})
    assert other.resource_options(2, 100, True)[0] == "-pe make 2"
    with pytest.raises(ArgumentValueError, match="lists none") as err:
        replaying(SgeCLI, {("qconf", "-spl"): ""}).resource_options(2, 100, True)
    assert err.value.parameter == "cores_per_worker"


def test_sge_hosts_and_node_limits():
    text = data("sge/qhost-q.txt")
    assert sge.parse_hosts(text) == {"vm": (2, pytest.approx(23.5 * 1024), ["all.q"])}
    assert sge.parse_node_limits(text, "all.q") == NodeLimits(2, pytest.approx(24064))
    assert sge.parse_node_limits(text, None) == NodeLimits(2, pytest.approx(24064))
    assert sge.parse_node_limits(text, "nosuch.q") == NodeLimits(None, None)


def test_sge_node_limits_count_only_the_hosts_of_the_queue():
    text = data("sge/handwritten-qhost-q.txt")
    hosts = sge.parse_hosts(text)
    assert sorted(hosts) == ["node01", "node02"]  # node03 is down ("-"), global is no host
    assert hosts["node01"][2] == ["short.q", "long.q"]
    assert sge.parse_node_limits(text, "short.q") == NodeLimits(32, pytest.approx(251.8 * 1024))
    assert sge.parse_node_limits(text, "long.q") == NodeLimits(64, pytest.approx(503.7 * 1024))


def test_sge_job_states():
    text = data("sge/qstat-u.txt")
    states = sge.parse_job_states(text, ["23", "25", "26", "27", "99"])
    assert {job: s.state for job, s in states.items()} == {
        "23": "RUNNING", "25": "PENDING", "26": "HELD", "27": "PENDING"}
    assert states["25"].reason == "qstat state qw"
    assert states["23"].reason == ""
    states = sge.parse_job_states(data("sge/handwritten-qstat-u.txt"),
                                  ["501", "502", "503", "504", "505"])
    assert {job: s.state for job, s in states.items()} == {
        "501": "RUNNING", "502": "RUNNING",  # t: being transferred to its host
        "503": "ERROR", "504": "DELETING",
        "505": "PENDING"}  # an array job: the state of its last listed task
    assert "qstat -j" in states["503"].reason


def test_sge_cli_runs_the_commands_it_parses():
    cli = replaying(SgeCLI, {("qconf", "-sql"): data("sge/qconf-sql.txt"),
                             ("qhost", "-q"): data("sge/handwritten-qhost-q.txt"),
                             ("qstat", "-u", "*"): data("sge/qstat-u.txt"),
                             ("qdel", "23"): ""})
    assert cli.queues() == Queues(["all.q"], None)
    assert cli.node_limits("long.q").cpus == 64
    assert cli.queue_memory("all.q") == QueueMemory(None, None)  # Grid Engine does not say
    assert cli.job_states(["24"]) == {"24": JobState("RUNNING", "")}
    cli.cancel(["23"])
    assert cli.calls == [("qconf", "-sql"), ("qhost", "-q"), ("qstat", "-u", "*"), ("qdel", "23")]


# ------------------------------------------------------------------ PBS
@pytest.mark.parametrize(("name", "names"), [
    ("qstat-Q.txt", LOCAL_PARTITIONS),  # Slurm's wrappers list the partitions
    ("handwritten-torque-qstat-Q.txt", ["batch", "long"]),
    ("handwritten-pbspro-qstat-Q.txt", ["workq", "long"]),
])
def test_pbs_queues(name, names):
    assert pbs.parse_queues(data(f"pbs/{name}")) == Queues(names, None)


@pytest.mark.parametrize(("name", "limits"), [
    ("pbsnodes-a.txt", NodeLimits(2, 24105)),  # the wrappers: availmem only
    # Torque: physmem, not the larger availmem (which counts swap)
    ("handwritten-torque-pbsnodes.txt", NodeLimits(40, 197734260 / 1024)),
    ("handwritten-pbspro-pbsnodes.txt", NodeLimits(72, 790626304 / 1024)),
])
def test_pbs_node_limits(name, limits):
    assert pbs.parse_node_limits(data(f"pbs/{name}")) == limits


def test_pbs_job_states():
    assert pbs.parse_job_states(data("pbs/qstat-jobs.txt"), ["152", "153"]) == {
        "152": JobState("RUNNING", ""), "153": JobState("RUNNING", "")}
    # finished jobs (C) are left out: the wrappers and Torque list them for a while
    assert pbs.parse_job_states(data("pbs/qstat-all.txt"), ["147", "152"]) == {
        "152": JobState("RUNNING", "")}
    assert pbs.parse_job_states(data("pbs/qstat-gone.txt"), ["152"]) == {}
    # Torque prints ids with the server's name; the keys are the ids as given
    states = pbs.parse_job_states(data("pbs/handwritten-torque-qstat.txt"),
                                  ["1199", "1201.pbs01.example.org", "1202", "1203"])
    assert states == {"1201.pbs01.example.org": JobState("RUNNING", ""),
                      "1202": JobState("PENDING", ""), "1203": JobState("HELD", "")}


def test_pbs_cli_lists_every_job_when_one_id_is_unknown():
    """Torque's ``qstat ID ID`` fails as a whole when one id is gone; then all jobs are listed."""
    cli = replaying(PbsCLI, {
        ("qstat", "-Q"): data("pbs/qstat-Q.txt"),
        ("pbsnodes", "-a"): data("pbs/pbsnodes-a.txt"),
        ("qstat", "1201", "1300"): SchedulerError("qstat: Unknown Job Id Error 1300.pbs01"),
        ("qstat",): data("pbs/handwritten-torque-qstat.txt"),
        ("qstat", "152", "153"): data("pbs/qstat-jobs.txt"),
        ("qdel", "152"): "",
    })
    assert cli.queues().names == LOCAL_PARTITIONS
    assert cli.node_limits("debug") == NodeLimits(2, 24105)
    assert cli.job_states(["1201", "1300"]) == {"1201": JobState("RUNNING", "")}
    assert cli.job_states(["152", "153"])["153"].state == "RUNNING"
    cli.cancel(["152"])
    assert cli.calls[-1] == ("qdel", "152")


def test_every_parser_is_tested_here():
    """A parser added to a scheduler module needs a test on recorded output here."""
    import inspect

    source = Path(__file__).read_text()
    for module in (slurm, sge, pbs):
        for name, _ in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("parse_"):
                assert f"{module.__name__.rsplit('.', 1)[1]}.{name}(" in source, name
