"""The shape of the house: folders on layers, imports only downwards, no cycle anywhere.

Read from the source with `ast` (nothing is imported), so that a function-local import
counts as much as one at the top; only imports under `if TYPE_CHECKING:` (a type's name,
never run) are left out. README's "How a message flows" describes the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailflow"

# From the top down: a module may import from its own layer and the layers below it.
# Two folders on one layer are siblings and never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mailflow.cli",),  # the command line
    ("mailflow.status",),  # the health check: reads what the daemon's processes leave
    ("mailflow.serve",),  # the daemon: receivers, handling process, delivery, ticks
    ("mailflow.receive",),  # mail arrives
    ("mailflow.pipeline",),  # the one path of a message
    ("mailflow.conversation", "mailflow.schedule"),  # acting: answered, and unasked
    ("mailflow.app",),  # changes people are told about
    ("mailflow.matching",),  # pairing a round
    ("mailflow.program",),  # the composition root: config, store, renderer, rules
    ("mailflow.send",),  # out
    ("mailflow.model",),  # the store's rows
    ("mailflow.read",),  # pure reading
    ("mailflow.rulebook",),  # rules/*.toml
    ("mailflow.config", "mailflow.store", "mailflow.logs", "mailflow.budget"),
    ("mailflow.errors",),  # the operator's mistakes: raised by every layer, the base too
    ("mailflow",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if _type_checking_only(node):
            pending.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append(submodule if submodule in MODULES else node.module)
        pending.extend(ast.iter_child_nodes(node))
    return [name for name in found if name in MODULES]


def import_graph() -> dict[str, set[str]]:
    return {
        name: set(_imports(ast.parse(path.read_text(), str(path)))) - {name}
        for name, path in MODULES.items()
    }


def layer_of(module: str) -> tuple[int, str]:
    """(the layer's depth, the folder or module that places it there)."""
    best: tuple[int, str] | None = None
    for depth, members in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and (
                best is None or len(member) > len(best[1])
            ):
                best = (depth, member)
    assert best is not None, f"{module} is on no layer: add it to LAYERS"
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_every_module_is_on_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_cycle_anywhere():
    assert cycles(import_graph()) == []


def test_imports_point_only_downwards():
    upward = []
    for module, imported in sorted(import_graph().items()):
        depth, folder = layer_of(module)
        for target in sorted(imported):
            target_depth, target_folder = layer_of(target)
            if target_depth < depth or (target_depth == depth and target_folder != folder):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_reader_touches_no_store_and_no_clock():
    """`read` is pure: no SQLite, no sending, no wall clock."""
    for module, path in MODULES.items():
        if not module.startswith("mailflow.read"):
            continue
        text = path.read_text()
        for forbidden in ("sqlite", "datetime.now", "time.time(", "sending"):
            assert forbidden not in text, f"{module} uses {forbidden}"


def test_the_checks_can_fail():
    """The graph and the cycle finder see what they must: a made-up loop is a cycle, and
    an upward arrow is found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert "mailflow.conversation.turn" in graph["mailflow.conversation.router"]
    assert layer_of("mailflow.read.parse")[0] > layer_of("mailflow.pipeline")[0]
    tree = ast.parse("if TYPE_CHECKING:\n    import mailflow.program\nimport mailflow.store\n")
    assert _imports(tree) == ["mailflow.store"]
