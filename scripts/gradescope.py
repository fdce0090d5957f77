"""Build a project's Gradescope autograder package: scripts/gradescope p0|p1|p2|p3 OUT.zip

The zip holds this repository (without caches, .git or .venv) and, at its top, the two files
Gradescope runs (its layout: the zip unpacks into /autograder/source):
- `setup.sh`, run once to build the image: installs Python 3.11+ and venv if the image lacks
  them, creates /autograder/source/.venv and installs requirements.txt into it;
- `run_autograder`, run for each submission: grades /autograder/submission with
  `scripts/grade.py pN --submission ... --gradescope /autograder/results/results.json` and
  writes a zero-score results.json saying so if the grader itself failed.
For a trial run anywhere, run_autograder reads AUTOGRADER_ROOT (instead of /autograder),
AUTOGRADER_PYTHON (instead of the .venv's python) and AUTOGRADER_GRADE_ARGS (more arguments
for scripts/grade.py, e.g. `--only Basic1`).

Exit status 0 when written, 2 for a bad argument (one line on stderr). Writes only OUT.zip.

Threads: only the main thread.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)  # run as a script: kits.py sits beside it

import kits  # noqa: E402 - needs the path above

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the autograder image (Ubuntu base image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"   # /autograder/source: this repository
export DEBIAN_FRONTEND=noninteractive
PYTHON=python3
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  apt-get update
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    apt-get install -y python3-venv python3-pip
  else
    # Ubuntu 22.04's python3 is 3.10: its universe has 3.11 beside it.
    apt-get install -y python3.11 python3.11-venv
    PYTHON=python3.11
  fi
fi
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission: grade /autograder/submission as {project} and write
# /autograder/results/results.json. For a trial run elsewhere: AUTOGRADER_ROOT (default
# /autograder), AUTOGRADER_PYTHON (default the .venv setup.sh made), AUTOGRADER_GRADE_ARGS
# (more arguments for scripts/grade.py, for instance --only Basic1).
set -uo pipefail
AUTOGRADER="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$AUTOGRADER/source"
RESULTS="$AUTOGRADER/results/results.json"
PYTHON="${{AUTOGRADER_PYTHON:-$SOURCE/.venv/bin/python}}"
mkdir -p "$AUTOGRADER/results"
rm -f "$RESULTS"
started=$SECONDS
cd "$SOURCE" || exit 1
# AUTOGRADER_GRADE_ARGS is split into words on purpose.
# shellcheck disable=SC2086
"$PYTHON" scripts/grade.py {project} --submission "$AUTOGRADER/submission" \\
  --gradescope "$RESULTS" ${{AUTOGRADER_GRADE_ARGS:-}}
status=$?
if [ ! -s "$RESULTS" ]; then
  message="The grader itself failed (exit status $status): please tell the course staff."
  printf '{{"score": 0, "execution_time": %s, "output": "%s", "tests": []}}\\n' \\
    "$((SECONDS - started))" "$message" > "$RESULTS"
fi
exit 0
"""

EXECUTABLE = (stat.S_IFREG | 0o755) << 16
PLAIN = (stat.S_IFREG | 0o644) << 16


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = EXECUTABLE if executable else PLAIN
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build(project: str, out_zip: str, root: str = ROOT) -> list[str]:
    """Write the autograder package for `project` to `out_zip`; returns its member names.
    Raises ValueError for an unknown project."""
    if project not in kits.KITS:
        raise ValueError(f"unknown project {project!r} (choose from {', '.join(kits.KITS)})")
    names = []
    with zipfile.ZipFile(out_zip, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(archive, "run_autograder", RUN_AUTOGRADER.format(project=project).encode(),
             executable=True)
        names += ["setup.sh", "run_autograder"]
        for path in kits.repository_files(root):
            if path in names:
                continue
            full = os.path.join(root, path)
            with open(full, "rb") as file:
                data = file.read()
            _add(archive, path, data, executable=os.access(full, os.X_OK))
            names.append(path)
    return names


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gradescope",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("project", choices=list(kits.KITS))
    parser.add_argument("out_zip", metavar="OUT.zip", help="the package to write")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out_zip = os.path.join(os.environ.get("CALLER_PWD", os.getcwd()),
                           os.path.expanduser(args.out_zip))
    try:
        names = build(args.project, out_zip)
    except (ValueError, OSError) as exc:
        print(f"scripts/gradescope: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out_zip}: setup.sh, run_autograder and {len(names) - 2} repository files; "
          f"upload it as the {args.project} assignment's autograder (Ubuntu base image)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
