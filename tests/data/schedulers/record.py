"""Record the outputs the scheduler parsers read, from the schedulers running on this machine.

Run as root with SLURM, SGE and the PBS shim up (``.ci/schedulers/start-all.sh``) and
their queues empty::

    python tests/data/schedulers/record.py

It submits a few ``sleep`` jobs so that running, pending and held jobs are there
to be listed, writes one file per command line (``slurm/``, ``sge/``, ``pbs/``,
with the command on the first line of ``README.md``'s table) and cancels every
job it submitted. Outputs are written byte for byte as the command printed them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
PBS_BIN = "/opt/slurm-torque/bin"


def run(cmd: list[str], *, pbs: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    paths = [p for p in env["PATH"].split(os.pathsep) if p != PBS_BIN]
    env["PATH"] = os.pathsep.join([PBS_BIN, *paths] if pbs else paths)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/tmp")
    if check and done.returncode != 0:
        sys.exit(f"{cmd} failed: {done.stderr}")
    return done


def save(name: str, cmd: list[str], *, pbs: bool = False, check: bool = True) -> None:
    done = run(cmd, pbs=pbs, check=check)
    (HERE / name).parent.mkdir(exist_ok=True)
    (HERE / name).write_text(done.stdout)
    if not check:
        (HERE / name).with_suffix(".stderr").write_text(
            f"exit code {done.returncode}\n{done.stderr}")
    print(f"{name:40} {' '.join(cmd)}")


def slurm() -> None:
    save("slurm/sinfo-partitions.txt", ["sinfo", "-h", "-o", "%P"])
    save("slurm/sinfo-nodes.txt", ["sinfo", "-h", "-N", "-o", "%c %m"])
    save("slurm/sinfo-nodes-8GBXS.txt", ["sinfo", "-h", "-N", "-o", "%c %m", "-p", "8GBXS"])
    save("slurm/sinfo-gres.txt", ["sinfo", "-h", "-N", "-o", "%G"])
    for part in ("debug", "8GBXS", "16GBS"):
        save(f"slurm/scontrol-partition-{part}.txt",
             ["scontrol", "-o", "show", "partition", part])
    sbatch = ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 120"]
    ids = [run([*sbatch, "-p", "debug", "--mem=16G"]).stdout.strip(),   # runs
           run([*sbatch, "-p", "debug", "--mem=16G"]).stdout.strip(),   # Resources
           run([*sbatch, "-p", "8GBXS", "--mem=10G"]).stdout.strip(),   # MaxMemPerLimit
           run([*sbatch, "-p", "debug", "--mem=1G", "--hold"]).stdout.strip()]  # JobHeldUser
    time.sleep(4)
    save("slurm/squeue-states.txt", ["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(ids)])
    run(["scancel", *ids])
    time.sleep(2)
    # a finished job: squeue still lists it for MinJobAge seconds, then not at all
    done = run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"]).stdout.strip()
    while run(["squeue", "-h", "-j", done, "-t", "PD,R,CG"]).stdout.strip():
        time.sleep(0.5)
    save("slurm/squeue-finished.txt", ["squeue", "-h", "-o", "%i %T %r", "-j", done],
         check=False)
    # an id slurmctld no longer knows at all (purged after MinJobAge): squeue fails
    save("slurm/squeue-purged.txt", ["squeue", "-h", "-o", "%i %T %r", "-j", "999999"],
         check=False)


def sge() -> None:
    save("sge/qconf-sql.txt", ["qconf", "-sql"])
    save("sge/qconf-spl.txt", ["qconf", "-spl"])
    save("sge/qhost-q.txt", ["qhost", "-q"])
    qsub = ["qsub", "-terse", "-o", "/dev/null", "-j", "y", "-b", "y"]
    ids = [run([*qsub, "sleep", "120"]).stdout.strip() for _ in range(3)]  # 2 slots: 1 waits
    ids.append(run([*qsub, "-h", "sleep", "120"]).stdout.strip())           # held
    array = run([*qsub, "-t", "1-2", "sleep", "120"]).stdout.strip().split(".")[0]
    time.sleep(5)
    save("sge/qstat-u.txt", ["qstat", "-u", "*"])
    run(["qdel", *ids, array])
    time.sleep(3)


def pbs() -> None:
    save("pbs/qstat-Q.txt", ["qstat", "-Q"], pbs=True)
    save("pbs/pbsnodes-a.txt", ["pbsnodes", "-a"], pbs=True)
    script = Path("/tmp/acme-record-pbs.sh")
    script.write_text("#!/bin/bash\n#PBS -l walltime=00:05:00\nsleep 120\n")
    qsub = ["qsub", "-q", "debug", str(script)]
    ids = [run([*qsub, "-l", "mem=16gb"], pbs=True).stdout.strip() for _ in range(2)]
    time.sleep(4)
    save("pbs/qstat-jobs.txt", ["qstat", *ids], pbs=True)
    save("pbs/qstat-all.txt", ["qstat"], pbs=True)
    run(["qdel", *ids], pbs=True)
    time.sleep(2)
    save("pbs/qstat-gone.txt", ["qstat", ids[0], "999999"], pbs=True, check=False)
    save("pbs/qstat-purged.txt", ["qstat", "999999"], pbs=True, check=False)
    script.unlink()


if __name__ == "__main__":
    slurm()
    sge()
    pbs()
