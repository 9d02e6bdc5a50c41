import os
import subprocess
import sys

# Run in a fresh interpreter: albumentations checks for updates once, at its first import.
PROBE = """
import os, urllib.request
os.environ.pop("NO_ALBUMENTATIONS_UPDATE", None)
calls = []
def refuse(*a, **k):
    calls.append(a[0] if a else k)
    raise OSError("network refused by the test")
urllib.request.urlopen = refuse
urllib.request.OpenerDirector.open = lambda self, *a, **k: refuse(*a, **k)
import shipload.data.transforms  # imports albumentations
import shipload.training
print(len(calls))
"""


def test_import_never_reaches_the_network():
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0", out.stderr


def test_probe_sees_the_check_when_not_disabled():
    # The probe is live: albumentations on its own does try the network.
    probe = PROBE.replace("import shipload.data.transforms  # imports albumentations\n"
                          "import shipload.training\n", "import albumentations\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, check=True)
    assert int(out.stdout.strip().splitlines()[-1]) >= 1, out.stderr
