import os
import subprocess
import sys

# Run in a fresh interpreter: albumentations checks for updates once, at its first import.
# The head refuses and counts every request made through urllib (albumentations' path).
HEAD = """
import os, urllib.request
os.environ.pop("NO_ALBUMENTATIONS_UPDATE", None)
calls = []
def refuse(*a, **k):
    calls.append(a[0] if a else k)
    raise OSError("network refused by the test")
urllib.request.urlopen = refuse
urllib.request.OpenerDirector.open = lambda self, *a, **k: refuse(*a, **k)
"""


def requests_made(body: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", HEAD + body + "\nprint(len(calls))\n"],
                         capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_training_path_never_reaches_the_network():
    # chip_augment is where shipload imports albumentations (the training transforms).
    assert requests_made("import shipload.data.transforms as t\nt.chip_augment(0)") == 0


def test_probe_sees_the_check_when_not_disabled():
    # The probe is live: albumentations imported on its own does try the network.
    assert requests_made("import albumentations") >= 1
