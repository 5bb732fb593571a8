"""How the code base reads, in numbers: the longest functions, the widest parameter lists,
the import cycles among rclrec's modules and the references that point outside the repository.

Question (issue 17, "Show"): does a change land in one place? Long functions and wide
parameter lists are where a change has to thread through; an import cycle ties modules that
should not know each other; a reference that leaves the repository (a doc that is not in it,
``../shared``) cannot be followed by a reader of the repository alone.

    python benchmarks/code_metrics.py                        # this tree
    git worktree add /tmp/before 20e2562
    python benchmarks/code_metrics.py --root /tmp/before --name code_metrics_20e2562

Everything is read with ``ast`` and plain text; nothing of the measured tree is imported, so an
old commit can be measured with today's script. Writes benchmarks/results/<name>.json and
prints the tables.

- Function length: lines from ``def`` to the last line of the body (docstring and comments
  included), every function and method, nested ones too.
- Parameters: named parameters plus ``*args`` / ``**kwargs``, without ``self`` and ``cls``.
- Import cycles: module-level imports only (``if TYPE_CHECKING:`` blocks left out, since they do
  not run), ``import a.b`` and ``from a.b import c`` as an edge to ``a.b``, or to ``a.b.c``
  where that is a module; cycles are the strongly connected components of that graph, each
  reported with one shortest cycle through it and the number of elementary cycles. Imports
  inside functions are counted apart: they are how a cycle is usually put off.
- Outside references: in every text file under rclrec/, a path that starts with ``../`` or
  ``shared/`` or is absolute, a file name (``*.md``, ``*.py``, ``*.toml``, ``*.sh``) found
  neither at that path (from the repository root or the file's folder) nor by its name anywhere
  in the repository, and ``X.md section N`` where X.md has no heading numbered N.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import networkx as nx  # installed with torch
from result_file import write_result

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "rclrec"
# A file-like token: optional folders, a name, one of the extensions the docs and code cite.
FILE_TOKEN = re.compile(
    r"(?<![\w{}/.-])((?:\.\./|/)?(?:[\w.-]+/)*[\w-][\w.-]*\.(?:md|py|toml|sh))\b")
# ../x (also ./../x), shared/x, or an absolute path into the machine's other folders.
OUTSIDE_PREFIX = re.compile(
    r"((?<![\w.-])\.\./[\w./-]+|(?<![\w/.-])shared/[\w./-]+|(?<![\w/.-])/(?:work|home|tmp)/[\w./-]+)")
SECTION_REF = re.compile(r"([\w./-]+\.md),? sections? (\d+[a-z]?)")
HEADING_NUMBER = re.compile(r"^#+\s+(\d+[a-z]?)\.", re.MULTILINE)
PLACEHOLDERS = {"FILE", "DIR", "PATH", "NAME"}  # usage texts: --config FILE.toml


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)


def functions(tree: ast.Module, module: str) -> list[dict[str, Any]]:
    """Every function and method: qualified name, first line, length, parameter count."""
    found: list[dict[str, Any]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                a = child.args
                named = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                count = len([n for n in named if n not in ("self", "cls")])
                count += (a.vararg is not None) + (a.kwarg is not None)
                found.append({"function": f"{module}:{prefix}{child.name}", "line": child.lineno,
                              "lines": child.end_lineno - child.lineno + 1, "params": count})
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
              modules: set[str]) -> list[str]:
    """The rclrec modules an import statement loads (the deepest that exist)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the package of this module
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                 for alias in node.names]
    out = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def import_graph(files: list[Path], root: Path) -> tuple[nx.DiGraph, nx.DiGraph]:
    """Import edges among rclrec modules: those made at module level, and those made inside
    functions (deferred until the function runs)."""
    modules = {module_name(p, root) for p in files}
    graph, deferred = nx.DiGraph(), nx.DiGraph()
    graph.add_nodes_from(modules)
    deferred.add_nodes_from(modules)
    for path in files:
        module = module_name(path, root)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))

        def walk(body: list[ast.stmt], module=module, is_package=is_package) -> None:
            for node in body:
                if isinstance(node, ast.Import | ast.ImportFrom):
                    for target in _imported(node, module, is_package, modules):
                        graph.add_edge(module, target)
                elif isinstance(node, ast.If) and _is_type_checking(node):
                    continue
                elif isinstance(node, ast.If | ast.Try | ast.With):
                    for block in ("body", "orelse", "finalbody"):
                        walk(getattr(node, block, []), module, is_package)
                    for handler in getattr(node, "handlers", []):
                        walk(handler.body, module, is_package)

        walk(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        for target in _imported(inner, module, is_package, modules):
                            deferred.add_edge(module, target)
    return graph, deferred


def cycles(graph: nx.DiGraph, limit: int = 10_000) -> list[dict[str, Any]]:
    """One entry per strongly connected component of more than one module."""
    out = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        sub = graph.subgraph(component)
        shortest = min((nx.shortest_path(sub, b, a) + [b] for a, b in sub.edges
                        if nx.has_path(sub, b, a)), key=len)
        count = 0
        for _ in nx.simple_cycles(sub):
            count += 1
            if count >= limit:
                break
        out.append({"modules": sorted(component), "shortest_cycle": shortest,
                    "elementary_cycles": count, "capped": count >= limit})
    return sorted(out, key=lambda c: -len(c["modules"]))


def _file_index(root: Path) -> tuple[set[str], set[str]]:
    """Relative paths and base names of every file in the repository (git's list if any)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, text=True, check=True).stdout
        paths = {line for line in listed.splitlines() if line}
    except (OSError, subprocess.CalledProcessError):
        paths = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return paths, {Path(p).name for p in paths}


def _resolves(token: str, source: Path, root: Path, paths: set[str], names: set[str]) -> bool:
    if token.startswith(("/", "../")):
        target = (source.parent / token).resolve() if token.startswith("../") else Path(token)
        try:
            return target.is_relative_to(root.resolve()) and target.exists()
        except OSError:
            return False
    if token in paths or (source.parent / token).exists():
        return True
    if "/" not in token:  # a bare name: somewhere in the repository
        return token in names
    # rclrec/x.py written from inside a subfolder, or docs/X.md: any path ending with it
    return any(p.endswith("/" + token) for p in paths)


def outside_references(root: Path) -> list[dict[str, Any]]:
    """References under rclrec/ that cannot be followed inside the repository."""
    paths, names = _file_index(root)
    sections: dict[str, set[str]] = {}
    found = []
    for source in sorted((root / PACKAGE).rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        try:
            text = source.read_text()
        except UnicodeDecodeError:
            continue
        rel = str(source.relative_to(root))
        for number, line in enumerate(text.splitlines(), 1):
            seen: set[str] = set()
            for match in OUTSIDE_PREFIX.finditer(line):
                token = match.group(1).rstrip(".")
                if not _resolves(token, source, root, paths, names):
                    seen.add(token)
                    found.append({"file": rel, "line": number, "kind": "outside path",
                                  "reference": token, "text": line.strip()})
            for match in FILE_TOKEN.finditer(line):
                token = match.group(1)
                if Path(token).stem in PLACEHOLDERS or any(token in s for s in seen):
                    continue
                if not _resolves(token, source, root, paths, names):
                    found.append({"file": rel, "line": number, "kind": "missing file",
                                  "reference": token, "text": line.strip()})
            for match in SECTION_REF.finditer(line):
                doc, section = match.groups()
                candidates = [p for p in paths if p == doc or p.endswith("/" + doc)]
                if not candidates:
                    continue  # already counted as a missing file
                if doc not in sections:
                    sections[doc] = set(HEADING_NUMBER.findall((root / candidates[0]).read_text()))
                if section not in sections[doc]:
                    found.append({"file": rel, "line": number, "kind": "missing section",
                                  "reference": f"{doc} section {section}", "text": line.strip()})
    return found


def measure(root: Path, top: int) -> dict[str, Any]:
    files = python_files(root)
    every = []
    for path in files:
        every += functions(ast.parse(path.read_text(), str(path)), module_name(path, root))
    graph, deferred = import_graph(files, root)
    both = nx.compose(graph, deferred)
    refs = outside_references(root)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                            capture_output=True, text=True).stdout.strip() or None
    lines = [len(p.read_text().splitlines()) for p in files]
    return {
        "measured_root": str(root), "measured_commit": commit,
        "modules": len(files), "functions": len(every), "lines": sum(lines),
        "longest_functions": sorted(every, key=lambda f: (-f["lines"], f["function"]))[:top],
        "widest_parameter_lists": sorted(every, key=lambda f: (-f["params"], f["function"]))[:top],
        "functions_over_50_lines": sum(f["lines"] > 50 for f in every),
        "functions_over_8_params": sum(f["params"] > 8 for f in every),
        "largest_modules": sorted(({"module": module_name(p, root), "lines": n}
                                   for p, n in zip(files, lines, strict=True)),
                                  key=lambda m: -m["lines"])[:top],
        "import_edges": graph.number_of_edges(),
        "import_cycles": cycles(graph),
        "deferred_import_edges": sorted(f"{a} -> {b}" for a, b in deferred.edges),
        "import_cycles_with_deferred": cycles(both),
        "outside_references": refs,
        "outside_reference_counts": dict(Counter(r["kind"] for r in refs)),
    }


def print_cycles(found: list[dict[str, Any]]) -> None:
    for c in found:
        more = "+" if c["capped"] else ""
        print(f"  {len(c['modules'])} modules, {c['elementary_cycles']}{more} elementary "
              f"cycles; shortest: {' -> '.join(c['shortest_cycle'])}")


def print_tables(result: dict[str, Any]) -> None:
    print(f"tree {result['measured_root']} at {result['measured_commit']}: "
          f"{result['modules']} modules, {result['lines']} lines, {result['functions']} functions")
    print(f"\nlongest functions (lines; {result['functions_over_50_lines']} over 50):")
    for f in result["longest_functions"]:
        print(f"  {f['lines']:5d}  {f['function']}")
    print(f"\nwidest parameter lists (without self/cls; {result['functions_over_8_params']} "
          f"over 8):")
    for f in result["widest_parameter_lists"]:
        print(f"  {f['params']:5d}  {f['function']}")
    print(f"\nimport cycles (module-level imports, {result['import_edges']} edges): "
          f"{len(result['import_cycles'])}")
    print_cycles(result["import_cycles"])
    print(f"\nimports of rclrec modules inside functions: "
          f"{len(result['deferred_import_edges'])} edges; cycles once they are counted too: "
          f"{len(result['import_cycles_with_deferred'])}")
    print_cycles(result["import_cycles_with_deferred"])
    refs = result["outside_references"]
    print(f"\nreferences that leave the repository: {len(refs)} "
          f"{result['outside_reference_counts'] or ''}")
    for r in refs:
        print(f"  {r['file']}:{r['line']}  [{r['kind']}] {r['reference']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="repository to measure (a worktree of another commit)")
    parser.add_argument("--top", type=int, default=10, help="rows per table")
    parser.add_argument("--name", default="code_metrics", help="results/<name>.json")
    args = parser.parse_args(argv)
    if not (args.root / PACKAGE).is_dir():
        print(f"code_metrics.py: error: {args.root} has no {PACKAGE}/ folder", file=sys.stderr)
        return 2
    result = measure(args.root.resolve(), args.top)
    print_tables(result)
    write_result(args.name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
