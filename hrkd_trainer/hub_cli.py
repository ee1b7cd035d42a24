"""Command line of ``hub_upload.py`` (console script ``hrkd-hub-upload``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .hub import PublishError, publish_run, stage_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Publish a finished hrkd-trainer run's student (never the teacher) on the Hugging Face Hub.",
    )
    parser.add_argument("run_dir", help="the run's --output_dir (holds student/ and results.json)")
    parser.add_argument(
        "--repo-id", required=True, help="Hub repo, 'user/name' or 'org/name' ('name': yours)"
    )
    parser.add_argument("--private", action="store_true", default=None, help="create the repo private")
    parser.add_argument(
        "--revision", "--branch", dest="revision", help="branch to push to (created if missing)"
    )
    parser.add_argument("--commit-message", help="commit message")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN, then the login cache)")
    parser.add_argument(
        "--base-model", help="Hub id of the teacher for the card's base_model (default: from results.json)"
    )
    parser.add_argument("--license", help="licence id for the card (default: the base model's, when known)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="write the exact folder that would be pushed (to --output-dir) and list it; push nothing",
    )
    parser.add_argument(
        "--output-dir", help="folder for --dry-run (default: RUN_DIR/hub_upload, replaced on each dry run)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="--dry-run: replace a non-empty --output-dir"
    )
    parser.add_argument("--endpoint", help="Hub endpoint (default: HF_ENDPOINT or https://huggingface.co)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.dry_run:
            default = args.output_dir is None
            out = args.output_dir or os.path.join(args.run_dir, "hub_upload")
            staged = stage_run(
                args.run_dir,
                out,
                args.repo_id,
                base_model=args.base_model,
                license=args.license,
                overwrite=default or args.overwrite,
            )
            print(staged.describe())
            print(
                f"dry run: nothing was pushed. Check {os.path.join(out, 'README.md')}, then drop --dry-run."
            )
            return 0
        info = publish_run(
            args.run_dir,
            args.repo_id,
            token=args.token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            base_model=args.base_model,
            license=args.license,
            endpoint=args.endpoint,
        )
    except PublishError as err:
        print(f"hub_upload: {err}", file=sys.stderr)
        return 1
    print(f"pushed: {getattr(info, 'commit_url', info)}")
    return 0
