"""Edge commands: export-model, verify, deploy."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import EXIT_ERROR, EXIT_OK
from .common import run_job as _run


def cmd_export_model(args: argparse.Namespace) -> int:
    from labeltool.jobs.export import export_model_job

    result = _run(export_model_job(Path(args.dir), Path(args.out), run_id=args.run, int8=args.int8, fp16=args.fp16,
                                   calibration_images=args.calibration_images, make_zip=not args.no_zip), args)
    if args.json:
        print(json.dumps({"event": "result", **result}))
        return EXIT_OK
    print(f"bundle of run {result['run_id']} ({result['preset']}) written to {result['bundle']}")
    for name, size in result["files"].items():
        print(f"  {name:<20} {size / 1e6:8.2f} MB")
    if result["zip"]:
        print(f"  zip: {result['zip']}")
    if result["calibration_images"]:
        print(f"  INT8 calibrated on {result['calibration_images']} project images")
    print(f"\nnext: labeltool verify {result['bundle']} {args.dir}")
    return EXIT_OK


def format_verification(r: dict[str, Any]) -> str:
    """The verification table for a terminal."""
    def ap(v: float | None) -> str:
        return "   -" if v is None else f"{v:.3f}"

    def diff(v: float | None) -> str:
        return "    -" if v is None else f"{v * 100:+5.1f}"

    keys = [k for k in ("torch_fp32", "ort_fp32", "ort_int8") if k in r["map50"]]
    lines = [f"{'':<14}" + "".join(f"{k:>12}" for k in keys),
             f"{'mAP@.5':<14}" + "".join(f"{r['map50'][k]:>12.3f}" for k in keys),
             f"{'latency ms':<14}" + "".join(f"{r['latency_median_ms'][k]:>12.1f}" for k in keys),
             f"{'size MB':<14}" + "".join(f"{r['size_bytes'][k] / 1e6:>12.2f}" for k in keys), "",
             f"{'class AP@.5':<14}{'torch':>8}" + "".join(f"{k[4:] + ' Δpt':>12}" for k in keys[1:])]
    for row in r["per_class_ap50"]:
        lines.append(f"{row['class']:<14}{ap(row['torch_fp32']):>8}"
                     + "".join(f"{diff(row.get(k + '_diff')):>12}" for k in keys[1:]))
    lines.append("")
    for key in ("fp32", "int8"):
        if f"{key}_map50_drop" in r:
            limit = r[f"max_{key}_drop"]
            lines.append(f"{key.upper()}: mAP@.5 drop {r[f'{key}_map50_drop'] * 100:.2f} points (allowed "
                         f"{limit * 100:.1f}), latency x{r[f'{key}_latency_ratio']:.2f}, size x{r[f'{key}_size_ratio']:.2f} "
                         "of PyTorch FP32")
    if r.get("int8_most_hurt_classes"):
        lines.append(f"INT8 hurts these classes most: {', '.join(r['int8_most_hurt_classes'])}")
    lines.append(("VERIFIED" if r["verified"] else "NOT VERIFIED: accuracy lost in the export is above the limit; "
                  "deploy the FP32 model or export again with more calibration images")
                 + f" ({r['n_images']} validation images, {r['threads']} threads)")
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    from labeltool.jobs.export import verify_job, weak_model_note

    result = _run(verify_job(Path(args.bundle), Path(args.dir), threads=args.threads,
                             max_fp32_drop=args.max_fp32_drop, max_int8_drop=args.max_int8_drop,
                             trust_bundle=args.trust_bundle), args)
    if args.json:
        print(json.dumps({"event": "result", **result}))
    else:
        print(format_verification(result))
        print(f"report: {result['report_file']}")
    weak = weak_model_note(result) if result["verified"] else None
    if weak:
        print(f"WARNING: {weak}", file=sys.stderr)
    return EXIT_OK if result["verified"] else EXIT_ERROR


def cmd_deploy(args: argparse.Namespace) -> int:
    from labeltool.jobs.export import deploy_job

    if args.rollback:
        if len(args.paths) != 1:
            print("error: give only the TARGET with --rollback", file=sys.stderr)
            return 2
        bundle, target = None, args.paths[0]
    else:
        if len(args.paths) != 2:
            print("error: give BUNDLE and TARGET (or TARGET --rollback)", file=sys.stderr)
            return 2
        bundle, target = Path(args.paths[0]), args.paths[1]
    ssh = {"known_hosts": Path(args.known_hosts) if args.known_hosts else None,
           "key_file": Path(args.key_file) if args.key_file else None,
           "password": os.environ.get("LABELTOOL_SSH_PASSWORD")}
    ssh = {k: v for k, v in ssh.items() if v is not None}
    result = _run(deploy_job(bundle, target, rollback=args.rollback, trust_bundle=args.trust_bundle, **ssh), args)
    if args.json:
        print(json.dumps({"event": "result", **result}, default=str))
        return EXIT_OK
    if result["action"] == "rollback":
        print(f"rolled back: {result['live_path']} is the previous bundle again (run {result['run_id']})")
    else:
        print(f"deployed run {result['run_id']}: the line runs {result['live_path']}/infer.py "
              f"(the previous bundle is kept; `labeltool deploy {target} --rollback` restores it)")
        if result["verified"] is False:
            print("WARNING: this bundle did not pass `labeltool verify`", file=sys.stderr)
        elif result["verified"] is None:
            print("note: this bundle was not verified; run `labeltool verify BUNDLE DIR` first", file=sys.stderr)
    return EXIT_OK


def add_parsers(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    p = add("export-model", cmd_export_model, "export a trained model as an edge bundle (ONNX FP32 + INT8, infer.py)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("out", metavar="OUT", help="bundle folder to create (OUT.zip is written next to it)")
    p.add_argument("--run", type=int, default=None, help="run id (default: the current model)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="also write an INT8 model calibrated on project images (default: yes)")
    p.add_argument("--fp16", action="store_true", help="also write an FP16 model")
    p.add_argument("--calibration-images", type=int, default=32)
    p.add_argument("--no-zip", action="store_true")
    p.add_argument("--json", action="store_true")

    p = add("verify", cmd_verify, "check a bundle against PyTorch on the validation images (exit 1: not verified)")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder or .zip")
    p.add_argument("dir", metavar="DIR", help="the project it was exported from")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both runtimes (default 2)")
    p.add_argument("--max-fp32-drop", type=float, default=0.005, help="allowed mAP@.5 loss, fraction (0.005)")
    p.add_argument("--max-int8-drop", type=float, default=0.02, help="allowed mAP@.5 loss, fraction (0.02)")
    p.add_argument("--trust-bundle", action="store_true",
                   help="run/install a bundle that is unsigned or signed by a key this installation does not trust")
    p.add_argument("--json", action="store_true")

    add("signing-key", cmd_signing_key, "show this installation's bundle-signing public key and the trusted keys")

    p = add("deploy", cmd_deploy, "install a bundle on a folder / mounted device or ssh://user@host/path")
    p.add_argument("paths", nargs="+", metavar="BUNDLE TARGET", help="BUNDLE TARGET, or TARGET with --rollback")
    p.add_argument("--rollback", action="store_true", help="make the previous bundle live again")
    p.add_argument("--known-hosts", help="extra known_hosts file for ssh:// targets (host keys are always checked)")
    p.add_argument("--key-file", help="private key for ssh:// targets (password: env LABELTOOL_SSH_PASSWORD)")
    p.add_argument("--trust-bundle", action="store_true",
                   help="run/install a bundle that is unsigned or signed by a key this installation does not trust")
    p.add_argument("--json", action="store_true")


def cmd_signing_key(args: argparse.Namespace) -> int:
    from labeltool.core.signing import TRUSTED_DIRNAME, key_dir, public_key_file, trusted_keys

    path = public_key_file()
    print(f"this installation's public key: {path}")
    print(f"  {path.read_text(encoding='utf-8').strip()}")
    print(f"trusted keys ({key_dir() / TRUSTED_DIRNAME}/*.pub and this one):")
    for kid, file in trusted_keys().items():
        print(f"  {kid}  {file}")
    print("To let another installation verify/deploy bundles exported here, copy the public key file into its "
          f"{TRUSTED_DIRNAME}/ folder (`labeltool signing-key` there shows where).")
    return EXIT_OK
