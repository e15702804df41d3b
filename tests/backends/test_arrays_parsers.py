"""The job-array backends' pure parts, without a scheduler: parsers, job scripts, options."""

from __future__ import annotations

import pytest

from acme_backends.arrays.base import _cause_in
from acme_backends.arrays.sge import expand_tasks, parse_max_aj_tasks, sge_script
from acme_backends.arrays.sge import parse_array_states as sge_states
from acme_backends.arrays.slurm import parse_array_states, parse_max_array_size, slurm_script
from acme_backends.jobqueue.settings import from_resources
from acme_core.errors import ArgumentTypeError, ArgumentValueError


def test_slurm_parsers():
    assert parse_max_array_size("AuthType = auth/munge\nMaxArraySize            = 1001\n") == 1001
    assert parse_max_array_size("nothing") is None
    text = "12_3 RUNNING None\n12_4 PENDING JobArrayTaskLimit\n13 RUNNING None\n12_[5-9] x y\n"
    assert parse_array_states(text) == {"12": {3: ("RUNNING", "None"),
                                               4: ("PENDING", "JobArrayTaskLimit")}}


def test_slurm_script_runs_each_element_with_its_number():
    script = slurm_script(["/py", "-m", "acme_core.element", "/run dir", "id", "0"], 40, 20,
                          name="acme-f", log_dir="/run/job-logs", throttle=2,
                          options=["--mem=100M"])
    assert "#SBATCH --array=0-19%2" in script
    assert "#SBATCH --mem=100M" in script
    assert "#SBATCH --output=/run/job-logs/acme-f-%A_%a.out" in script
    assert script.rstrip().endswith(
        "exec /py -m acme_core.element '/run dir' id 0 \"$((SLURM_ARRAY_TASK_ID + 40))\"")


def test_sge_parsers_and_script():
    assert parse_max_aj_tasks("max_aj_instances             2000\nmax_aj_tasks 75000\n") == 75000
    assert parse_max_aj_tasks("max_aj_tasks 0\n") is None
    assert expand_tasks("5-9:2,12") == [5, 7, 9, 12]
    text = ("7 0.5 acme-f root r 12/02/2026 05:00:00 all.q@vm 1 3\n"
            "7 0.5 acme-f root qw 12/02/2026 05:00:00 1 4-5:1\n"
            "8 0.5 other root qw 12/02/2026 05:00:00 1 1-3:1\n")
    states = sge_states(text, {"7"})
    assert sorted(states["7"]) == [2, 3, 4] and states["7"][2][0] == "RUNNING"
    script = sge_script(["/py", "x"], 0, 5, name="acme-f", log_dir="/l", throttle=3, options=[])
    assert "#$ -t 1-5" in script and "#$ -tc 3" in script
    assert script.rstrip().endswith('"$((SGE_TASK_ID - 1 + 0))"')


def test_resources_map_to_the_backend_keywords():
    """The array backends use the job-queue backends' mapping."""
    assert from_resources({"resources": {"cores": 2, "gpus": 1, "mem": "4GB"}}) == {
        "cores_per_worker": 2, "gpus": 1, "mem_per_worker": "4GB"}
    with pytest.raises(ArgumentValueError, match="disagree"):
        from_resources({"resources": {"cores": 2}, "cores_per_worker": 3})
    with pytest.raises(ArgumentTypeError, match="resources"):
        from_resources({"resources": 4})


def test_the_cause_of_a_killed_element_in_words():
    log = "...\nslurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-12-02T05:00:00 ***\n"
    assert _cause_in(log).startswith("it was cancelled: slurmstepd")
    assert _cause_in("*** JOB 3 CANCELLED AT x DUE TO TIME LIMIT ***").startswith(
        "it ran out of its walltime")
    assert _cause_in("all fine") is None
