"""``shipload`` command line: parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shipload import __version__
from shipload.config import ConfigError
from shipload.errors import UsageError

DEFAULT_SYNTH_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "synth.yaml"


def _synth(a: argparse.Namespace) -> int:
    from shipload.config import load_yaml
    from shipload.synth.params import SynthConfig
    from shipload.synth.preview import contact_sheet
    from shipload.synth.writer import write_dataset

    cfg = load_yaml(SynthConfig, a.config) if a.config else SynthConfig()
    if a.output_format:
        import dataclasses

        cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, output=a.output_format))
    out = write_dataset(cfg, a.out, a.n, a.seed, workers=a.workers, overwrite=a.overwrite,
                        progress=not a.quiet)
    print(f"wrote {a.n} chips and {out / 'labels.csv'}")
    if a.preview:
        print(f"preview: {contact_sheet(out, a.preview)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = argparse.ArgumentParser(prog="shipload", description=__doc__)
    p.add_argument("--version", action="version", version=f"shipload {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="render a labelled set of synthetic tanker chips")
    s.add_argument("--out", required=True, type=Path, help="output directory")
    s.add_argument("--n", required=True, type=int, help="number of chips")
    s.add_argument("--seed", type=int, default=0, help="run seed (same seed, same bytes)")
    s.add_argument("--config", type=Path, default=None,
                   help="renderer YAML (default: built-in, identical to configs/synth.yaml)")
    s.add_argument("--workers", type=int, default=1, help="rendering processes")
    s.add_argument("--format", dest="output_format", choices=["rgb8", "tiff16_rgb", "tiff16_rgbn"],
                   default=None, help="override sensor.output: 8-bit PNG/JPEG or 16-bit TIFF")
    s.add_argument("--preview", type=Path, default=None, help="also write a contact sheet PNG")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_synth)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shipload`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, ConfigError) as e:
        print(f"shipload {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shipload {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
