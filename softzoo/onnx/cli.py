"""``softzoo export`` and ``softzoo parity``."""

from __future__ import annotations

import argparse
import json

from softzoo._io import check_not_input
from softzoo.models import load_checkpoint
from softzoo.onnx.export import export, write_metadata
from softzoo.onnx.lowering import SOFTPLUS_LOWERINGS
from softzoo.onnx.parity import PROVIDERS, check_parity, export_certified

__all__ = ["export_main", "parity_main"]


def _providers(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROVIDERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"providers must be among {', '.join(PROVIDERS)}, got {text!r}"
        )
    return names


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="softzoo export", description="Export a model to ONNX.")
    parser.add_argument("--ckpt_path", required=True, help="a SoftRegressor checkpoint (.ckpt)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--softplus",
        choices=SOFTPLUS_LOWERINGS,
        default="exact",
        help="exact: fast exact lowering (default); plain: onnxruntime's Softplus op",
    )
    parser.add_argument("--name", default=None, help="model name stored in the metadata")
    parser.add_argument(
        "--no-parity",
        action="store_true",
        help="skip the CPU parity check (by default it runs and is stored in the file)",
    )
    args = parser.parse_args(argv)
    check_not_input(args.output, [("checkpoint", args.ckpt_path)])
    module = load_checkpoint(args.ckpt_path)
    if args.no_parity:
        print(f"wrote {export(module, args.output, softplus=args.softplus, model_name=args.name)}")
        return 0
    report = export_certified(module, args.output, softplus=args.softplus, model_name=args.name)
    print(f"wrote {report.onnx_file}")
    print(report.summary())
    return 0 if report.passed else 1


def parity_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="softzoo parity",
        description="Certify an ONNX file against its PyTorch module; exit 0 only on pass.",
    )
    parser.add_argument("onnx_file")
    parser.add_argument("--ckpt_path", required=True, help="the checkpoint it was exported from")
    parser.add_argument("--providers", type=_providers, default=["cpu"], help="e.g. cpu,cuda")
    parser.add_argument(
        "--rows", type=_count, default=1024, help="random rows besides the adversarial ones"
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument(
        "--write", action="store_true", help="store the report in the file's metadata"
    )
    args = parser.parse_args(argv)
    report = check_parity(
        load_checkpoint(args.ckpt_path), args.onnx_file, args.providers, args.rows
    )
    print(report.to_json() if args.json else report.summary())
    if args.write:
        write_metadata(args.onnx_file, {"parity": json.dumps(report.to_dict())})
    return 0 if report.passed else 1
