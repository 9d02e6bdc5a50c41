"""Train or test the shipload model: ``python train.py fit --config configs/default.yaml``.

Resume an interrupted run with ``--ckpt_path last``; test with ``test --ckpt_path PATH``.
"""

from shipload.training import cli_main

if __name__ == "__main__":
    cli_main()
