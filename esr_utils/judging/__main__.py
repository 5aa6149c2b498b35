"""`python -m esr_utils.judging --judge offline --in trials.jsonl --out graded.jsonl`."""

from __future__ import annotations

import argparse
import sys

from esr_utils.judging import MissingAPIKey, make_judge
from esr_utils.judging.regrade import regrade_file


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {value}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m esr_utils.judging",
        description="Grade JSONL records (fields prompt, response, label; others kept) into "
                    "attempts with any judge. Records already in --out are skipped.")
    parser.add_argument("--judge", default="offline",
                        help="offline | offline:strict | anthropic:<model> | "
                             "openai:<model>@<base-url> (default: offline)")
    parser.add_argument("--in", dest="in_path", required=True, help="input JSONL")
    parser.add_argument("--out", dest="out_path", required=True, help="output JSONL (appended)")
    parser.add_argument("--chunk", type=_positive_int, default=16, help="records per write")
    parser.add_argument("--max-concurrent", type=_positive_int, default=8,
                        help="parallel LLM calls")
    parser.add_argument("--no-cache", action="store_true", help="do not use the on-disk cache")
    parser.add_argument("--retry-errors", action="store_true",
                        help="grade again the records of --out that have a judge_error")
    parser.add_argument("--batch", action="store_true",
                        help="LLM judges: use the provider's batch API (cheaper, slower; a rerun "
                             "resumes a pending batch); default: interactive calls")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        judge = make_judge(args.judge, cache=None if args.no_cache else "default",
                           max_concurrent=args.max_concurrent)
    except (MissingAPIKey, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        counts = regrade_file(judge, args.in_path, args.out_path, chunk=args.chunk,
                              retry_errors=args.retry_errors, progress=not args.quiet,
                              batch=args.batch)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = f", {counts['stale']} outdated verdicts replaced" if counts["stale"] else ""
    print(f"{judge.name}: {counts['graded']} graded, {counts['skipped']} already done, "
          f"{counts['errors']} judge errors{stale} -> {args.out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
