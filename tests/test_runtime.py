import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_usable_cores_follow_the_affinity_not_the_machine() -> None:
    # As under `taskset -c 0` or a one-core SLURM allocation: the workers and onnxruntime's
    # threads default to the one core, not to every core of the machine.
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from shipload.runtime import usable_cores; print(usable_cores(), os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "1"
    from shipload.runtime import usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0)) <= int(out[1])
