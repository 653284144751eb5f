"""The shape of the package, checked: data flows one way, private modules stay private, the test double
stays out of production runs, and every module has its test file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "reconciler"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_NAMES: frozenset[str] = frozenset()


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported at run time (not under TYPE_CHECKING), resolved to reconciler modules."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("reconciler"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reconciler"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULE_NAMES)
            names_from_module = len(submodules) < len(node.names)
            found.update(submodules | ({node.module} if names_from_module else set()))
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):  # lazy imports inside functions
                visit(child)

    visit(tree)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULE_NAMES = frozenset(MODULES)
GRAPH = {name: {m for m in _runtime_imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_module_imports_have_no_cycles() -> None:
    state: dict[str, int] = {}

    def walk(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(GRAPH[name]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [name, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, [*trail, nxt])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name, [name])


def test_private_modules_are_not_imported_across_packages() -> None:
    for name, path in MODULES.items():
        package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
        for imported in _runtime_imports(path):
            parts = imported.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")]
            if private:
                owner = ".".join(parts[: private[0]])
                assert package == owner or package.startswith(owner + "."), f"{name} imports private {imported}"


# each layer is a folder of the package (docs/architecture.md); the top level holds only the two entry points
LAYERS = ("vocabulary", "core", "adapters", "application", "interface", "emulator")
ENTRY_POINTS = {"reconciler.api": "interface", "reconciler.__main__": "interface"}
ENTRY_POINTS["reconciler"] = "vocabulary"  # the package itself holds only its version
MAY_IMPORT = {  # docs/architecture.md
    "vocabulary": {"vocabulary"},
    "core": {"vocabulary", "core"},
    "adapters": {"vocabulary", "core", "adapters"},
    "application": {"vocabulary", "core", "adapters", "application"},
    "interface": {"vocabulary", "core", "adapters", "application", "interface"},
    "emulator": {"vocabulary", "adapters", "emulator"},
}
NETWORK = ("httpx", "httpcore", "http.client", "urllib.request", "uvicorn", "alibabacloud", "huaweicloudsdk", "aiohttp")


def _layer(module: str) -> str:
    if module in ENTRY_POINTS:
        return ENTRY_POINTS[module]
    folder = module.split(".")[1] if "." in module else ""
    assert folder in LAYERS, f"{module} is in no layer folder of docs/architecture.md"
    return folder


def test_every_module_lives_in_a_layer_folder() -> None:
    for name in MODULES:
        if name != "reconciler":
            _layer(name)


def test_each_layer_imports_only_what_the_architecture_allows() -> None:
    broken = []
    for name, imported in GRAPH.items():
        if name == "reconciler":
            continue
        for other in imported:
            if _layer(other) not in MAY_IMPORT[_layer(name)]:
                broken.append(f"{name} ({_layer(name)}) imports {other} ({_layer(other)})")
    assert not broken, broken


def test_the_core_loads_no_network_library_and_no_adapter() -> None:
    """Checked transitively, in a fresh interpreter: what importing every core module loads."""
    core = sorted(m for m in MODULES if m != "reconciler" and _layer(m) in ("core", "vocabulary"))
    probe = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        f"network = {NETWORK!r}\n"
        "edges = ('reconciler.adapters', 'reconciler.application', 'reconciler.interface', 'reconciler.emulator')\n"
        "print(sorted(m for m in sys.modules if m.startswith(network) or m.startswith(edges)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_quickbi_run_never_loads_the_emulator_or_huaweis_sdk(tmp_path: Path) -> None:
    probe = (
        "import sys, reconciler.interface.cli, reconciler.application.usecases, reconciler.api\n"
        "kept_out = ('reconciler.emulator', 'uvicorn', 'huaweicloudsdkcore')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(kept_out))\n"
        "print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_module_has_a_test_file() -> None:
    tests = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    # modules covered by a test file named for the area they belong to
    covered_by = {
        "reconciler.vocabulary.base": "test_vocabulary",
        "reconciler.core.apply.breakers": "test_usecases",
        "reconciler.application.usecases._common": "test_usecases",
        "reconciler.application.usecases.planning": "test_changed_from",
        "reconciler.application.usecases.applying": "test_usecases",
        "reconciler.application.usecases.reports": "test_usecases",
        "reconciler.application.usecases.adoption": "test_adoption",
        "reconciler.application.usecases.tickets": "test_tickets",
        "reconciler.vocabulary.fault_settings": "test_emulator_wire",
        "reconciler.adapters.quickbi.access": "test_ports",
        "reconciler.vocabulary.cells": "test_vocabulary",
        "reconciler.vocabulary.yamlfile": "test_policy",
        "reconciler.interface.progress": "test_cli",
        "reconciler.__main__": "test_cli",
        "reconciler.adapters.quickbi.models": "test_client",
        "reconciler.adapters.quickbi._client": "test_client",
        "reconciler.adapters.quickbi._pacing": "test_client",
        "reconciler.adapters.quickbi._credentials": "test_secrets_and_credentials",
        "reconciler.adapters.quickbi.errors": "test_client",
        "reconciler.adapters.quickbi.signing": "test_signing",
        "reconciler.emulator.backend": "test_backend",
        "reconciler.emulator.dataarts": "test_dataarts",
        "reconciler.adapters.dataarts._client": "test_dataarts",
        "reconciler.adapters.dataarts._auth": "test_dataarts",
        "reconciler.core.ticket_audit": "test_dataarts",
        "reconciler.emulator.wire": "test_emulator_wire",
        "reconciler.emulator.faults": "test_emulator_wire",
        "reconciler.emulator.orgfile": "test_backend",
        "reconciler.emulator.serve": "test_emulator_wire",
        "reconciler.core.policy._load": "test_policy",
        "reconciler.core.policy._model": "test_policy",
        "reconciler.vocabulary.redaction": "test_secrets_and_credentials",
        "reconciler.core.lock": "test_ledger_audit_lock",
        "reconciler.core.audit": "test_ledger_audit_lock",
        "reconciler.core.ledger": "test_ledger_audit_lock",
        "reconciler.application.config": "test_config_snapshot",
        "reconciler.core.snapshot": "test_config_snapshot",
        "reconciler.interface.render": "test_report",
        "reconciler.core.drift": "test_report",
        "reconciler.core.state": "test_access_safety",
        "reconciler.vocabulary.errors": "test_policy",
        "reconciler.core.access": "test_adoption",
        "reconciler.core.importer": "test_adoption",
        "reconciler.interface.schema": "test_adoption",
        "reconciler.api": "test_tickets",
        "reconciler.vocabulary.files": "test_vocabulary",
        "reconciler.core.policy._format": "test_fmt",
        "reconciler.vocabulary.bitsets": "test_vocabulary",
        "reconciler.emulator.limits": "test_emulator_wire",
        "reconciler.vocabulary.limits": "test_hostile_input",
        "reconciler.application.starter": "test_starter",
    }
    missing = []
    for name in MODULES:
        if name == "reconciler" or name.endswith("__init__") or MODULES[name].name == "__init__.py":
            continue
        wanted = covered_by.get(name, "test_" + name.rsplit(".", 1)[-1])
        if wanted not in tests:
            missing.append(f"{name} ({wanted})")
    assert not missing, missing
