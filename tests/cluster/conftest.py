"""A real single-node SLURM cluster for the tests marked `slurm`
(workflow/scripts/slurm_up.sh brings it up; the fixture stops it again if it started it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass

import pytest

from tests.cluster.jobs import REPO

UP = REPO / "workflow" / "scripts" / "slurm_up.sh"
DOWN = REPO / "workflow" / "scripts" / "slurm_down.sh"
# exit codes of slurm_up.sh that mean "this machine cannot host the test cluster"
_CANNOT = {2: "not root", 3: "apt-get cannot install slurm-wlm/munge", 4: "daemons did not start",
           5: "a site slurm.conf is in place"}


@dataclass(frozen=True)
class Cluster:
    node: str
    partition: str
    cpus: int
    mem_mb: int


def _controller_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and "UP" in r.stdout


@pytest.fixture(scope="session")
def slurm_cluster() -> Cluster:
    if os.environ.get("DPLM2_TEST_SLURM") != "1":
        pytest.skip(
            "the real-SLURM test takes several minutes: run it with `make test-slurm` "
            "(sets DPLM2_TEST_SLURM=1; needs root and apt-get or an installed slurm-wlm)"
        )
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (slurm_up.sh installs and starts daemons)")
    if shutil.which("slurmd") is None and shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm is not installed and apt-get is not available to install it")
    was_up = _controller_up()
    r = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=900)
    if r.returncode in _CANNOT:
        pytest.skip(f"cannot bring up a SLURM cluster here ({_CANNOT[r.returncode]}): "
                    f"{r.stderr.strip()[-1500:]}")
    assert r.returncode == 0, f"slurm_up.sh failed ({r.returncode}):\n{r.stderr}\n{r.stdout}"
    try:
        node = socket.gethostname().split(".")[0]
        info = subprocess.run(
            ["sinfo", "-h", "-N", "-n", node, "-o", "%P|%c|%m"],
            capture_output=True, text=True, check=True,
        ).stdout.split()[0]
        partition, cpus, mem = info.split("|")
        yield Cluster(node=node, partition=partition.rstrip("*"), cpus=int(cpus), mem_mb=int(mem))
    finally:
        if not was_up:
            subprocess.run(["bash", str(DOWN)], capture_output=True, text=True, timeout=120)
