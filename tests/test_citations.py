"""Code and docs cite papers, never files outside this repository.

The project's standard: a physics statement cites the work by authors, year
(where the work gives one) and equation number, e.g. "Tu, Li & Yao, Eq. 19"
(the works are listed in docs/references.md); a convention points at our own
docs (docs/conventions.md, docs/architecture.md). Files that live outside the
repository (the source texts, the reference-results and design notes of the
development workspace) must not be cited: a reader of the repository cannot
open them.

Pure Python and fast: no package import, no numba. The repository's tracked
text files come from ``git ls-files`` (tracked, plus untracked files that git
does not ignore; all files under the root when git is missing or the tree is
not a git checkout).
"""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve()
SUFFIXES = (".py", ".md", ".toml", ".cfg", ".txt", ".rst")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "build", "dist", ".venv", "venv", "node_modules"}

#: (regex, what it catches); matched line by line
PATTERNS = [
    # the source texts by their workspace number: "seed 001", "Seed 004", "seed001", "seed-002";
    # not an RNG seed ("seed 2026", "seed=1", "seeds")
    (re.compile(r"\bseed[ _-]?00[0-4]\b", re.IGNORECASE), "source text by number (cite the paper)"),
    (re.compile(r"\bseeds/00[0-4]"), "source text file (cite the paper)"),
    # the reference-results notes: "REFERENCES §2", "REFERENCES.md §0", "REFERENCES.md"
    (re.compile(r"\bREFERENCES(?:\.md)?\s*§"), "reference-results notes (cite the source or docs/)"),
    (re.compile(r"\bREFERENCES\.md\b"), "reference-results notes (cite the source or docs/)"),
    # the design brief: "DESIGN.md §3", "DESIGN §3", "DESIGN.md section 3"
    (re.compile(r"\bDESIGN(?:\.md)?\s*§"), "design brief (state the reason or cite docs/)"),
    (re.compile(r"\bDESIGN\.md\b"), "design brief (state the reason or cite docs/)"),
    # anything in the workspace next to the checkout
    (re.compile(r"\.\./shared\b"), "file outside the repository"),
    (re.compile(r"/work/shared\b"), "file outside the repository"),
    (re.compile(r"\bshared/(?:seeds|bench|reviews|hooks)/"), "file outside the repository"),
]


def scan_text(path, text):
    """Citations of files outside the repository in ``text``: list of ``(path, line, text, why)``."""
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for rx, why in PATTERNS:
            if rx.search(line):
                hits.append((str(path), lineno, line.strip(), why))
                break
    return hits


def repository_files(root=ROOT):
    """Tracked (and untracked, not ignored) text files with the suffixes above, this file excluded."""
    names = None
    try:
        cmd = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        out = subprocess.run(cmd, cwd=root, capture_output=True, timeout=60)
        if out.returncode == 0:
            names = [n for n in out.stdout.decode("utf-8", "replace").split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = None
    if names is None:  # no git, or not a checkout: every file under the root
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
            for f in filenames:
                names.append(os.path.relpath(os.path.join(dirpath, f), root))
    files = []
    for n in sorted(names):
        p = (Path(root) / n).resolve()
        if n.endswith(SUFFIXES) and p != SELF and p.is_file():
            files.append(n)
    return files


def test_no_citations_of_files_outside_the_repository():
    files = repository_files()
    assert len(files) > 20, f"found only {len(files)} files under {ROOT}: the walk is broken"
    hits = []
    for n in files:
        text = (ROOT / n).read_text(encoding="utf-8", errors="replace")
        hits += scan_text(n, text)
    report = "\n".join(f"{p}:{i}: {line}    [{why}]" for p, i, line, why in hits)
    assert not hits, (
        f"{len(hits)} citation(s) of files outside the repository; cite the paper by authors and "
        f"equation (docs/references.md) or our own docs instead:\n{report}")


def test_scanner_flags_outside_citations():
    bad = [
        "Omega = -2 Im<..> (seed 001 Eq. 44)",
        "Seed 004's band-normalised quantum metric",
        "see seed001 and seed-002, seed_003",
        "the kernel rules of DESIGN.md §3",
        "(DESIGN §7)",
        "rules of DESIGN.md section 3",
        "Conventions (REFERENCES §0)",
        "closed forms of REFERENCES.md §2",
        "see REFERENCES.md",
        "The design brief is `../shared/DESIGN.md`",
        "runs ``../shared/bench/numpy_baseline.py``",
        "text in shared/seeds/001_2647dfccef63fc09.txt",
        "| NumPy baseline (`shared/bench/numpy_baseline.py`) | 3.5e6 |",
    ]
    for line in bad:
        assert scan_text("x.py", line), f"not flagged: {line!r}"


def test_scanner_spares_legitimate_uses():
    good = [
        "def main(n=10000, seed=2026):",
        "The conductivity comes out as 0.452 (seed 1, 3 min on two cores)",
        "run with seed 2026 and seed 0042",
        "seeds = [0, 1, 2**40 + 7]",
        "np.random.SeedSequence(seed).generate_state(2, np.uint32)",
        "SeedSequence seed (default fresh entropy), recorded.",
        "Tu, Li & Yao, Eqs. 19-21; Qi, Wang & Watson, Eq. 4.15",
        "deterministic references (born_rate, transport_rate)",
        "Deterministic kinetic-equation references for the Monte Carlo.",
        "docs/architecture.md, 'Kernel rules'; the design of the kernels",
        "shared by all tests and the example",
    ]
    for line in good:
        assert not scan_text("x.py", line), f"flagged: {line!r}"


def test_bibliography_lists_the_works_and_readme_links_it():
    refs = (ROOT / "docs" / "references.md").read_text(encoding="utf-8")
    for authors in ("J. Lu and Z. Zhou", "M. W.-Y. Tu, C. Li and W. Yao", "K. Qi, L. Wang and A. B. Watson",
                    "C. H. Wong and Y. Tserkovnyak", "L. Balents"):
        assert authors in refs, f"docs/references.md does not list {authors}"
    assert "docs/references.md" in (ROOT / "README.md").read_text(encoding="utf-8")
