"""The README stays true: its two commands are the ones CI runs, and every figure in its
"## Measured ..." section comes from a committed file under benchmarks/results/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measured_figures(readme: str) -> list[str]:
    section = re.search(r"^## Measured[^\n]*\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert section, "README has no '## Measured ...' section"
    return sorted(set(re.findall(r"(?<![\w.])(\d+\.\d+)(?![\w.])", section.group(1))), key=float)


def committed_values() -> list[float]:
    values = []
    for path in (ROOT / "benchmarks" / "results").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".csv", ".txt"):
            values += [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", path.read_text(errors="ignore"))]
    return values


def backed(figure: str, values: list[float]) -> bool:
    """Present to the printed precision (a fraction may also be quoted as a percentage)."""
    decimals, x = len(figure.split(".")[1]), float(figure)
    return any(round(candidate, decimals) == x for v in values for candidate in (v, v * 100, v / 100))


def test_every_measured_figure_has_a_committed_source() -> None:
    values = committed_values()
    missing = [f for f in measured_figures((ROOT / "README.md").read_text()) if not backed(f, values)]
    assert missing == [], f"README figures in no file under benchmarks/results/: {missing}"


def test_the_checker_catches_an_invented_figure() -> None:
    readme = "## Measured here\n\nThe student is 97.3125% accurate and 12.75× faster (v2.0x is no figure).\n## Layout\n"
    assert measured_figures(readme) == ["12.75", "97.3125"]
    assert not backed("97.3125", [0.9, 12.75]) and backed("12.75", [12.75]) and backed("97.5", [0.975])


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    setup = re.search(r"^(pip install .*)$", readme, re.M).group(1)
    test = re.search(r"^(python -m pytest.*)$", readme, re.M).group(1)
    assert setup in ci and test in ci and "-c constraints.txt" in setup
