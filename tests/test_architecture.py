"""The shape of the code, read from its imports (AST, nothing executed).

- Packages form layers (`LAYERS`, drawn in docs/architecture.md): a package imports only from
  its own layer's packages or lower ones, so no import cycle can exist between packages. An
  import inside a function counts like any other: it cannot hide a cycle.
- A domain's tables (`<domain>/models.py`) are read only by that domain; everyone else calls
  its services. The aggregate `commonlab/models.py` and the migrations are the exceptions.
- The portal and the CLI are clients: from a domain they import its schemas and services.

Imports under `if TYPE_CHECKING:` are ignored: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "commonlab"

# Lowest first. A package may import its own layer and those below it, never above.
LAYERS: list[set[str]] = [
    {"errors", "bounded", "config", "pagination", "ticker", "schemas", "extras"},
    {"db"},
    {"policy"},  # levels, the principal, actions, Cedar
    {"http"},  # problem+json, body limit, sessions, paging, who is asking (installed)
    {"record"},
    {"regulation"},  # the regulation document and which version is in force
    {"identity"},
    {"governance"},
    {"allocation"},
    {"artifacts"},
    {"compute"},
    {"datasearch"},  # training-data search: indexes (artifacts), opt-outs, search, tracing
    {"workloads"},  # train, fine-tune, evaluate: admitted as compute jobs
    {"simulator"},
    {"portal"},
    {"wiring", "models", "migrations", "facility", "app", "apidocs", "serve", "operations"}
    # what `up --demo` makes, through the domains' services
    | {"demo", "demo_models", "demo_media"},
    # `commonlab audit`: replays the record with its own code (tested apart, below)
    {"audit"},
    {"cli"},
]

# The packages whose tables no one else reads.
DOMAINS = {
    "identity",
    "policy",
    "record",
    "regulation",
    "governance",
    "allocation",
    "compute",
    "artifacts",
    "datasearch",
    "simulator",
    "workloads",
    "portal",
}
# What a client (the portal, the CLI) may import from a domain: its schemas and its use cases
# (`service`, and identity's device grant, whose use cases the portal's /device page calls,
# and its federation, whose use cases the portal's sign-in with a provider calls).
CLIENT_FACING = {"schemas", "service", "device_grant", "federation"}
CLIENTS = {"portal", "cli"}
# Pure modules a client may use as they are, and why.
CLIENT_MAY_ALSO = {
    # the vocabulary every use case speaks: levels, who is asking, what they may do
    "commonlab.policy.levels",
    "commonlab.policy.principal",
    "commonlab.policy.actions",
    # `record verify` / `watch` check a facility offline, with pure proof code only
    "commonlab.record.canonical",
    "commonlab.record.checkpoint",
    "commonlab.record.merkle",
    "commonlab.record.note",
    "commonlab.record.tiles",
    "commonlab.record.verify",
    "commonlab.record.watch",
    # `commonlab train|finetune|evaluate` checks a configuration before sending it, and
    # `workload run` (inside a job) writes the card and forwards the runtime's metrics
    "commonlab.workloads.config",
    "commonlab.workloads.card",
    "commonlab.workloads.runtime.metrics",
    # `commonlab membership|optout` hash a file as the facility hashes a record's text, and
    # `optout check` verifies the signed filter of opted-out digests offline
    "commonlab.datasearch.content",
    "commonlab.datasearch.optout_filter",
    # `commonlab simulate` runs the simulator on the laptop, as a library
    "commonlab.simulator.charts",
    "commonlab.simulator.inputs",
    "commonlab.simulator.mapping",
    "commonlab.simulator.run",
    "commonlab.simulator.scenarios",
    "commonlab.simulator.sweep",
    "commonlab.simulator.traces",
    "commonlab.simulator.whatif",
    # the regulation document, parsed and checked before it is tabled
    "commonlab.regulation.document",
    # the fleet document, parsed and checked before it is applied
    "commonlab.compute.fleet_spec",
    # `artifacts push` stamps safetensors headers and `artifacts verify` checks a download's
    # signed manifest on the laptop: file-format and signature code only, no tables
    "commonlab.artifacts.metadata",
    "commonlab.artifacts.signing",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. commonlab.compute.service
    target: str  # the imported module, e.g. commonlab.artifacts.service
    line: int
    local: bool  # inside a function

    def __str__(self) -> str:
        where = " (inside a function)" if self.local else ""
        return f"{self.source}:{self.line} imports {self.target}{where}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = SOURCE.joinpath(relative)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def imports_of(path: Path) -> Iterator[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]

    def visit(node: ast.AST, local: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child.test):
                yield from (i for n in child.orelse for i in visit(n, local))
                continue
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(source, alias.name, child.lineno, inner)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                for alias in child.names:
                    # `from commonlab.x import service` imports the module commonlab.x.service
                    name = f"{module}.{alias.name}"
                    target = name if _is_module(name) else module
                    yield Import(source, target, child.lineno, inner)
            yield from visit(child, inner)

    yield from visit(ast.parse(path.read_text(), str(path)), False)


def all_imports() -> list[Import]:
    found: dict[tuple[str, str, int], Import] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for imp in imports_of(path):
            if imp.target == "commonlab" or imp.target.startswith("commonlab."):
                found.setdefault((imp.source, imp.target, imp.line), imp)
    return list(found.values())


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "commonlab"


def layer_of(package: str) -> int:
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"package commonlab.{package} is in no layer: add it to LAYERS")


IMPORTS = all_imports()


def test_every_package_is_in_a_layer() -> None:
    for imp in IMPORTS:
        layer_of(package_of(imp.source))


def test_a_package_imports_only_its_own_layer_and_those_below() -> None:
    upward = [
        f"{imp}: {package_of(imp.source)} (layer {layer_of(package_of(imp.source))}) may not "
        f"import {package_of(imp.target)} (layer {layer_of(package_of(imp.target))})"
        for imp in IMPORTS
        if package_of(imp.target) != "commonlab"
        and layer_of(package_of(imp.target)) > layer_of(package_of(imp.source))
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        a, b = package_of(imp.source), package_of(imp.target)
        if a != b and b != "commonlab":
            edges.setdefault(a, set()).add(b)
    cycles = _cycles(edges)
    lines = []
    for cycle in cycles:
        lines.append(" ↔ ".join(cycle))
        lines += [
            f"    {imp}"
            for imp in IMPORTS
            if package_of(imp.source) in cycle
            and package_of(imp.target) in cycle
            and package_of(imp.source) != package_of(imp.target)
        ]
    assert not cycles, "import cycles between packages:\n" + "\n".join(lines)


def _exempt_from_table_rule(module: str) -> bool:
    return module == "commonlab.models" or module.startswith("commonlab.migrations")


def test_a_domains_tables_are_read_only_by_that_domain() -> None:
    foreign = [
        str(imp)
        for imp in IMPORTS
        if imp.target.endswith(".models")
        and package_of(imp.target) in DOMAINS
        and package_of(imp.target) != package_of(imp.source)
        and not _exempt_from_table_rule(imp.source)
    ]
    assert not foreign, "reads of another domain's tables:\n" + "\n".join(foreign)


def test_clients_import_schemas_and_services_only() -> None:
    wrong = []
    for imp in IMPORTS:
        client, domain = package_of(imp.source), package_of(imp.target)
        if client not in CLIENTS or domain not in DOMAINS or domain == client:
            continue
        module = imp.target.split(".")
        if len(module) == 2:  # the domain package itself: `from commonlab.x import service`
            continue
        if module[2] in CLIENT_FACING or imp.target in CLIENT_MAY_ALSO:
            continue
        wrong.append(str(imp))
    assert not wrong, "clients reaching past a domain's schemas and services:\n" + "\n".join(wrong)


# The audit re-derives the facility's figures with its own code: from the facility's packages
# it may read only the entry schemas and the record's pure proof code, never a service, a
# rule or a table, or it would be the facility checking itself.
AUDIT_MAY_READ = {
    "commonlab.errors",
    "commonlab.record.canonical",
    "commonlab.record.checkpoint",
    "commonlab.record.fields",
    "commonlab.record.merkle",
    "commonlab.record.note",
    "commonlab.record.tiles",
}


def _audit_may_read(target: str) -> bool:
    return (
        target in AUDIT_MAY_READ
        or target.startswith("commonlab.audit")
        or (target.endswith(".events") and package_of(target) in DOMAINS)
    )


def test_the_audit_shares_only_the_entry_schemas_with_the_facility() -> None:
    wrong = [
        str(imp)
        for imp in IMPORTS
        if package_of(imp.source) == "audit" and not _audit_may_read(imp.target)
    ]
    assert not wrong, "the audit reaching into the facility's own code:\n" + "\n".join(wrong)


# The checker itself, on code made to break each rule --------------------------------------


def _scratch(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return [
        imp
        for path in sorted(tmp_path.rglob("*.py"))
        for imp in _scratch_imports(path, tmp_path)
        if imp.target.startswith("commonlab.")
    ]


def _scratch_imports(path: Path, root: Path) -> Iterator[Import]:
    global SOURCE
    saved, SOURCE = SOURCE, root / "commonlab"
    try:
        yield from list(imports_of(path))
    finally:
        SOURCE = saved


def test_a_cycle_hidden_inside_a_function_is_still_a_cycle(tmp_path: Path) -> None:
    imports = _scratch(
        tmp_path,
        {
            "commonlab/__init__.py": "",
            "commonlab/a/__init__.py": "",
            "commonlab/a/service.py": "from commonlab.b import service\n",
            "commonlab/b/__init__.py": "",
            "commonlab/b/service.py": "def f():\n    from commonlab.a import service\n",
            "commonlab/c/__init__.py": "",
            "commonlab/c/service.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from commonlab.a import service\n"
            ),
        },
    )
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(package_of(imp.source), set()).add(package_of(imp.target))
    assert _cycles(edges) == [["a", "b"]]
    assert any(imp.local for imp in imports)
    assert "c" not in edges  # type-only imports never run


@pytest.mark.parametrize(
    ("code", "target"),
    [
        ("from commonlab.compute.models import Job\n", "commonlab.compute.models"),
        ("from commonlab.compute import models\n", "commonlab.compute.models"),
        ("import commonlab.compute.models\n", "commonlab.compute.models"),
        ("from ..compute import models\n", "commonlab.compute.models"),
    ],
)
def test_every_spelling_of_an_import_is_seen(tmp_path: Path, code: str, target: str) -> None:
    imports = _scratch(
        tmp_path,
        {
            "commonlab/__init__.py": "",
            "commonlab/compute/__init__.py": "",
            "commonlab/compute/models.py": "",
            "commonlab/portal/__init__.py": "",
            "commonlab/portal/views.py": code,
        },
    )
    assert [imp.target for imp in imports] == [target]
