"""Private members of pybreaker, gunicorn and prometheus_client are used in one adapter module per
library, written for one version of it.

The scan (AST) finds, in all of the project's code (tests included):
- imports of a library's private modules or names (a leading underscore, or a module the library does
  not document, such as ``prometheus_client.mmap_dict``);
- attribute accesses whose name is one of the library's private members (collected from the
  installed library: underscore attributes and methods of its classes, and ``self._x`` assignments in
  its source), on any object but ``self``/``cls`` of a class that is not derived from the library;
- for gunicorn, the Arbiter's and Worker's undocumented members (``LISTENERS``, ``WORKERS``,
  ``reexec_pid``...): the server hooks documentation shows only ``log`` and ``pid``.
Each such use must be in the library's adapter (``<library>_internals.py``), whose ``WRITTEN_FOR``
must name the installed version: an upgrade fails here first, and the adapter says what to recheck.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import PROJECT_DIR

SCANNED = ("apps", "dotmac", "deploy", "bench", "tests")
GUNICORN_DOCUMENTED = {"log", "pid"}  # what gunicorn's server-hook documentation uses
GUNICORN_HOOK_ARGUMENTS = {"server", "arbiter", "worker"}


@dataclass(frozen=True)
class Library:
    module: str  # import name
    dist: str  # distribution name, for the installed version
    adapter: str  # file name of its adapter module
    private_modules: tuple[str, ...] = ()  # modules it does not document as public API


LIBRARIES = (
    Library("pybreaker", "pybreaker", "pybreaker_internals.py"),
    Library("gunicorn", "gunicorn", "gunicorn_internals.py", ("gunicorn.arbiter", "gunicorn.workers.base")),
    Library(
        "prometheus_client", "prometheus-client", "prometheus_internals.py",
        ("prometheus_client.mmap_dict", "prometheus_client.values", "prometheus_client.metrics_core"),
    ),
)  # fmt: skip


def library_modules(library: Library) -> list:
    package = importlib.import_module(library.module)
    modules = [package]
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{library.module}."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:  # optional extras (twisted, gevent...) not installed
            continue
    return modules


def private_members(library: Library) -> set[str]:
    names: set[str] = set()
    for module in library_modules(library):
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = ""
        names.update(re.findall(r"self\.(_[A-Za-z]\w*)", source))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                names.update(n for n in vars(cls) if n.startswith("_") and not n.startswith("__"))
    if library.module == "gunicorn":
        from gunicorn.arbiter import Arbiter
        from gunicorn.workers.base import Worker

        for cls in (Arbiter, Worker):
            source = inspect.getsource(cls)
            names.update(n for n in vars(cls) if not n.startswith("__"))
            names.update(re.findall(r"self\.([A-Za-z_]\w*)\s*=", source))
        names -= GUNICORN_DOCUMENTED
        names -= {"run", "start", "stop", "signal", "setup", "reload", "init_signals", "notify"}
    return names


PRIVATE = {library.module: private_members(library) for library in LIBRARIES}


def project_files() -> list[Path]:
    """Every Python file of the project but this one (which reads the libraries to list their internals)."""
    this = Path(__file__).resolve()
    return sorted(
        path for root in SCANNED for path in (PROJECT_DIR / root).rglob("*.py") if path.resolve() != this
    )


def _imported_library_names(tree: ast.AST) -> dict[str, str]:
    """Local name → library, for names bound by importing from a library."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PRIVATE:
                    names[(alias.asname or alias.name).split(".")[0]] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PRIVATE:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module.split(".")[0]
    return names


def uses_of_internals(path: Path) -> list[tuple[str, int, str]]:
    """(library, line, what) for each use of a library's private member in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = _imported_library_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for library in LIBRARIES:
                for module in filter(None, modules):
                    if module.split(".")[0] != library.module:
                        continue
                    private_module = module in library.private_modules or any(
                        part.startswith("_") for part in module.split(".")
                    )
                    private_names = isinstance(node, ast.ImportFrom) and any(
                        alias.name.startswith("_") for alias in node.names
                    )
                    if private_module or private_names:
                        found.append((library.module, node.lineno, f"import of {module}"))
    # A class derived from a library class uses that library's members on self.
    derived_from: dict[ast.ClassDef, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in imported:
                    derived_from[node] = imported[root.id]
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def enclosing_class_library(node: ast.AST) -> str | None:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.ClassDef):
                return derived_from.get(node)
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        own = (isinstance(value, ast.Name) and value.id in ("self", "cls")) or (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"
        )
        if own:
            candidates = [enclosing_class_library(node)]
        else:
            # Another object's member: the libraries this file imports, and gunicorn for the objects
            # its server hooks receive (a hook module need not import gunicorn).
            candidates = sorted(set(imported.values()))
            if isinstance(value, ast.Name) and value.id in GUNICORN_HOOK_ARGUMENTS:
                candidates.append("gunicorn")
        for module in filter(None, candidates):
            if node.attr in PRIVATE[module]:
                found.append((module, node.lineno, ast.unparse(node)))
    return found


def test_private_members_of_libraries_are_used_only_in_their_adapters():
    outside = []
    used_in_adapter = {library.module: 0 for library in LIBRARIES}
    adapters = {library.module: library.adapter for library in LIBRARIES}
    for path in project_files():
        for module, line, what in uses_of_internals(path):
            if path.name == adapters[module]:
                used_in_adapter[module] += 1
            else:
                outside.append(f"{path.relative_to(PROJECT_DIR)}:{line}: {module}: {what}")
    assert not outside, "private members used outside their adapter module:\n" + "\n".join(outside)


def canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda library: library.module)
def test_each_adapter_names_the_installed_version_it_was_written_for(library):
    [adapter] = [path for path in project_files() if path.name == library.adapter]
    tree = ast.parse(adapter.read_text())
    [written_for] = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["WRITTEN_FOR"]
    ]
    installed = importlib.metadata.version(library.dist)
    name, _, version = written_for.partition("==")
    assert (canonical(name), version) == (canonical(library.dist), installed), (
        f"{adapter.relative_to(PROJECT_DIR)} was written for {written_for}, {installed} is installed: "
        "recheck every use listed in its docstring against the new version, then update WRITTEN_FOR"
    )


def test_the_scan_finds_a_private_member_used_outside_an_adapter(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pybreaker\n"
        "from prometheus_client.mmap_dict import MmapedDict\n"
        "def hook(server, breaker):\n"
        "    server.LISTENERS.clear()\n"
        "    return breaker._state_storage, server.log\n"
        "class Storage(pybreaker.CircuitBreakerStorage):\n"
        "    def state(self):\n"
        "        return self._name, self._own_thing\n"
        "class Own:\n"
        "    def f(self):\n"
        "        return self._state_storage\n"
    )
    found = {(module, what) for module, _, what in uses_of_internals(sample)}
    assert found == {
        ("pybreaker", "breaker._state_storage"),
        ("prometheus_client", "import of prometheus_client.mmap_dict"),
        ("gunicorn", "server.LISTENERS"),
        ("pybreaker", "self._name"),
    }
