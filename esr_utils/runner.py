"""Execute the book's notebooks with papermill under one profile.

The chapter list is `book/_toc.yml` and nowhere else: every TOC entry under `notebooks/` is a
source notebook `notebooks/<stem>.ipynb`, executed into `book/notebooks/<stem>.ipynb`.

    python -m esr_utils.runner --profile smoke            # all chapters, in TOC order
    python -m esr_utils.runner --profile cpu --only 01_steering_setup
    python -m esr_utils.runner --profile paper-dryrun    # paper code paths on tiny stand-ins
    python -m esr_utils.runner --profile cpu --jobs 2    # two chapters at a time (esr_utils.lanes)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from esr_utils.config import PROFILES, check_parameters, load_profile, notebook_parameters
from esr_utils.execution_report import WHOLE_BOOK, record_execution
from esr_utils.hardware import matmul_peak_gflops
from esr_utils.memory import ChildPeakMemory
from esr_utils.paths import BOOK_DIR, EXECUTED_NOTEBOOKS_DIR, NOTEBOOKS_DIR

__all__ = ["toc_notebooks", "execute_notebook", "profile_session", "preflight_chapters", "main"]


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(str(node["file"]))
        for value in node.values():
            if isinstance(value, (list, dict)):
                files.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            files.extend(_toc_files(item))
    return files


def toc_notebooks(toc_path: Path = BOOK_DIR / "_toc.yml") -> list[str]:
    """Stems of the executed chapters, in reading order, read from the book's TOC."""
    toc = yaml.safe_load(toc_path.read_text())
    stems = [Path(f).name.removesuffix(".ipynb") for f in _toc_files(toc)
             if Path(f).parent.name == "notebooks"]
    missing = [s for s in stems if not (NOTEBOOKS_DIR / f"{s}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"_toc.yml lists notebooks with no source in notebooks/: {missing}")
    return stems


def _show_parameters_once(path: Path, profile: str) -> None:
    """The book shows one parameters cell: the values this run used, labelled with the profile.

    The notebook's own `parameters` cell (the cpu defaults) is removed from the rendered page;
    papermill's `injected-parameters` cell, which overrides it, is shown.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags:
            cell.source = cell.source.replace(
                "# Parameters", f"# Parameters of this run: profile {profile!r} "
                f"(esr_utils/profiles/{profile}.yaml)", 1)
    nbformat.write(nb, path)


def execute_notebook(stem: str, profile: str, *, output_dir: Path = EXECUTED_NOTEBOOKS_DIR,
                     timeout_s: int = 3600, overrides: dict | None = None,
                     source: Path | None = None) -> float:
    """Run one notebook under a profile; returns its wall time in seconds.

    `source` replaces `notebooks/<stem>.ipynb` as the notebook to run (the tests use it to run
    a chapter with its exercise solutions appended).
    """
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    params = {**notebook_parameters(profile, stem), **(overrides or {})}
    check_parameters(profile, stem, params)
    began = time.perf_counter()
    papermill.execute_notebook(
        str(source or NOTEBOOKS_DIR / f"{stem}.ipynb"),
        str(output_dir / f"{stem}.ipynb"),
        parameters=params,
        kernel_name="python3",
        cwd=str(output_dir),
        execution_timeout=timeout_s,
        progress_bar=False,
        log_output=False,
    )
    _show_parameters_once(output_dir / f"{stem}.ipynb", profile)
    return time.perf_counter() - began


# faults the dry run's judge stub injects at the start of every chapter: each is retried (a
# longer list costs time, as backoff doubles on sequential calls; the unit tests inject more)
DRY_RUN_FAULTS = (429, 503, "garbage")
# fake keys for the dry run: the SDKs need one, and a test scans every file written for them
DRY_RUN_KEYS = {"ANTHROPIC_API_KEY": "sk-ant-dryrun-0000-not-a-key",
                "OPENAI_API_KEY": "sk-dryrun-0000-not-a-key"}


@contextlib.contextmanager
def profile_session(profile: str):
    """What a profile needs around its chapters. For a dry run (`stand_ins: true` in its file):
    stand-ins switched on, and a local judge stub (hashed verdicts, injected faults) answering
    at the judge's API address with fake keys; the notebooks' kernels inherit the environment.
    Yields the stub, or None for the other profiles."""
    if not load_profile(profile)["stand_ins"]:
        yield None
        return
    from esr_utils.judging.stub_server import JudgeStub, hashed_grade
    from esr_utils.stand_ins import ENV_VAR

    with JudgeStub(grade=hashed_grade, faults=DRY_RUN_FAULTS) as stub, \
            tempfile.TemporaryDirectory(prefix="esr-dryrun-judge-") as judge_cache:
        # one thread: the stand-ins' matrices are so small that a second thread's start-up and
        # spinning cost more than it saves (measured 6x slower with 2 on a loaded 2-core machine)
        # the stub's grades go to a throwaway judge cache, never the user's
        env = {ENV_VAR: "1", "ANTHROPIC_BASE_URL": stub.url, "OMP_NUM_THREADS": "1",
               "ESR_JUDGE_CACHE_DIR": judge_cache, **DRY_RUN_KEYS}
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            yield stub
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def preflight_chapters(profile: str, stems: list[str]) -> None:
    """Check every model, backend and judge the chapters will use, before the first one runs.

    Raises `PreflightError` listing each missing key, GPU, disk or NDIF deployment with its fix.
    """
    from esr_utils.models import backend_for, get_spec
    from esr_utils.preflight import PreflightError, preflight

    # every (model, backend, device) once, with every LLM the chapters using it will call
    runs: dict[tuple, set[str]] = {}
    for stem in stems:
        params = notebook_parameters(profile, stem)
        # every LLM a chapter calls: its judge, the concreteness rater, the recovery rubric
        judges = {params.get("JUDGE"), params.get("RECOVERY_JUDGE"),
                  str(params.get("CONCRETENESS", "")).removeprefix("llm:")}
        for name in params.get("MODELS") or [params["MODEL"]]:
            spec = get_spec(name)
            key = (spec.name, backend_for(spec, params.get("BACKEND", "local")),
                   params.get("DEVICE", "auto"))
            runs.setdefault(key, set()).update(j for j in judges
                                               if j and j not in {"none", "proxy"})
    problems = []
    for (name, backend, device), judges in runs.items():
        try:
            preflight(get_spec(name), backend=backend, judge=sorted(judges), device=device)
        except PreflightError as err:
            problems.append(f"{name} ({backend}): {err}")
    if problems:
        raise PreflightError("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="cpu")
    parser.add_argument("--only", nargs="*", default=None, help="notebook stems to run")
    parser.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    parser.add_argument("--skip-preflight", action="store_true",
                        help="do not check keys, GPU, disk and NDIF before running")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chapters run side by side, the cores shared out (esr_utils.lanes)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for each chapter's kernel (default: torch's own)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads must be at least 1")

    chapters = toc_notebooks()
    stems = chapters
    if args.only:
        unknown = sorted(set(args.only) - set(chapters))
        if unknown:
            parser.error(f"not in book/_toc.yml: {unknown}; chapters are {chapters}")
        stems = [s for s in chapters if s in args.only]
    # every chapter's parameters are checked before the first one runs
    try:
        for stem in stems:
            check_parameters(args.profile, stem)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    whole_book = stems == chapters
    # the machine's speed beside the book's wall time: the same book takes 3x longer on a day
    # whose matmul peak is 3x lower (appendix A3)
    peak = round(matmul_peak_gflops(), 1) if whole_book else None
    began = time.perf_counter()
    if args.jobs > 1 and len(stems) > 1:
        code = _run_in_lanes(args, stems)
    else:
        with profile_session(args.profile) as stub:
            code = _run_chapters(args, stems, stub)
    if whole_book and code != 2:  # 2: stopped before the first chapter
        record_execution(args.profile, WHOLE_BOOK, {
            "status": "ok" if code == 0 else "failed", "jobs": args.jobs,
            "seconds": round(time.perf_counter() - began, 1), "matmul_peak_gflops": peak})
    return code


def _run_in_lanes(args, stems: list[str]) -> int:
    """Each chapter in a runner process of its own (`--only`), `args.jobs` at a time; each child
    starts its profile's session itself and records its chapter in the report."""
    import subprocess

    from esr_utils.lanes import run_in_lanes

    if not args.skip_preflight and _preflight_failed(args.profile, stems):
        return 2

    def run_one(stem: str, threads: int) -> bool:
        # one write per line: two lanes' prints must not interleave within a line
        sys.stdout.write(f"[{args.profile}] {stem} starts, {threads} thread(s)\n")
        sys.stdout.flush()
        command = [sys.executable, "-m", "esr_utils.runner", "--profile", args.profile,
                   "--only", stem, "--skip-preflight", "--threads", str(threads)]
        return subprocess.run(command).returncode == 0

    began = time.perf_counter()
    status = run_in_lanes(stems, run_one, jobs=args.jobs, keep_going=args.keep_going)
    print(f"[{args.profile}] {len(stems)} chapters, {args.jobs} at a time, in "
          f"{(time.perf_counter() - began) / 60:.1f} min: "
          + ", ".join(f"{s} {v}" for s, v in status.items()), flush=True)
    for stem, outcome in status.items():
        if outcome == "skipped":
            record_execution(args.profile, stem, {
                "status": "failed", "error": "skipped: a chapter it needs failed"})
    return 0 if set(status.values()) == {"ok"} else 1


def _preflight_failed(profile: str, stems: list[str]) -> bool:
    from esr_utils.preflight import PreflightError

    try:
        preflight_chapters(profile, stems)
    except PreflightError as err:
        print(f"error: {err}", file=sys.stderr)
        return True
    return False


def _run_chapters(args, stems: list[str], stub=None) -> int:
    if not args.skip_preflight and _preflight_failed(args.profile, stems):
        return 2
    if args.threads:  # the kernels inherit it; a chapter's own THREADS may not exceed it
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    failed = []
    for stem in stems:
        print(f"[{args.profile}] {stem} ...", flush=True)
        if stub is not None:  # every chapter of a dry run meets the injected faults
            stub.faults = list(DRY_RUN_FAULTS)
        try:
            with ChildPeakMemory() as memory:
                seconds = execute_notebook(stem, args.profile,
                                           overrides=_thread_overrides(args, stem))
        except Exception as err:  # report every failing chapter, then fail the run
            print(f"[{args.profile}] {stem} FAILED: {type(err).__name__}: {err}", flush=True)
            failed.append(stem)
            record_execution(args.profile, stem, {
                "status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]})
            if not args.keep_going:
                break
            continue
        print(f"[{args.profile}] {stem} done in {seconds:.0f} s", flush=True)
        record_execution(args.profile, stem, {"status": "ok", "seconds": round(seconds, 1),
                                              "peak_rss_mb": memory.peak_mb,
                                              "threads": args.threads})
    return 1 if failed else 0


def _thread_overrides(args, stem: str) -> dict:
    """`--threads` caps a chapter's own THREADS parameter (chapter 6 sets torch's threads)."""
    threads = notebook_parameters(args.profile, stem).get("THREADS")
    if args.threads and threads is not None and threads > args.threads:
        return {"THREADS": args.threads}
    return {}


if __name__ == "__main__":
    sys.exit(main())
