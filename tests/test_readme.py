"""The README's Python example runs as written, on the synthetic data with tiny settings.

The example trains on Beauty for up to 40 epochs; the test swaps in the synthetic data set, a
tiny model and one short epoch by replacing exact pieces of its text, and fails if a piece is
no longer there (so an edit of the README that the test can no longer follow is noticed).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tiny_substitutions(tiny: dict[str, str]) -> dict[str, str]:
    """What the README says -> what the test runs instead: conftest's tiny run."""
    others = ", ".join(f'"{key}": "{value}"' for key, value in tiny.items()
                       if key != "train.epochs")
    return {'"data.dataset": "beauty"': others,
            '"train.epochs": 40': f'"train.epochs": {tiny["train.epochs"]}'}


def readme_example() -> str:
    """The first ```python block under the README's "Python API" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md: no ```python block under '## Python API'"
    return match.group(1)


def test_readme_example_runs(tmp_path, monkeypatch, capsys, tiny):
    code = readme_example()
    for said, instead in tiny_substitutions(tiny).items():
        assert code.count(said) == 1, f"README example no longer has {said}"
        code = code.replace(said, instead)
    monkeypatch.chdir(tmp_path)  # its run folder goes under runs/ here
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)

    metrics, top = namespace["metrics"], namespace["top"]
    assert metrics["method"] == "rcl" and metrics["dataset"] == "synthetic"
    assert metrics["epochs_run"] == int(tiny["train.epochs"])
    assert 0 <= metrics["test"]["NDCG@10"] <= 1
    assert (tmp_path / "runs" / "api-rcl" / "model.pt").exists()
    history = namespace["history"]
    assert len(top.items) == 10 and not set(top.items) & set(history)  # history excluded
    assert top.scores == sorted(top.scores, reverse=True)
    out = capsys.readouterr().out
    assert str(metrics["test"]["NDCG@10"]) in out and top.items[0] in out


DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "results").glob("*/NOTES.md"))]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text())  # not the code blocks' '#' lines
    return re.findall(r"(?m)^#{1,6} (.+)$", text)


def test_markdown_links_resolve():
    """Every relative link of the docs names a file that exists, and a heading of it."""
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in {
                    github_anchor(h) for h in headings(file)}:
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_named_results_sections_exist():
    """'docs/RESULTS.md, "Section"' in the docs names a heading that RESULTS.md has."""
    titles = [" ".join(h.replace("`", "").split()) for h in headings(ROOT / "docs" / "RESULTS.md")]
    missing = []
    for doc in DOCS:
        text = " ".join(doc.read_text().split())
        for name in re.findall(r'RESULTS\.md\)?,? (?:section )?\(?"([^"]+)"', text):
            name = name.replace("`", "")
            if not any(name in title for title in titles):
                missing.append(f"{doc.relative_to(ROOT)}: \"{name}\"")
    assert not missing, "\n".join(missing)
