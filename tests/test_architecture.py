"""The house rules of docs/architecture.md, read off the source so that they cannot quietly break:
no import cycle among the package's modules (imports inside functions included), no module over
the size limit, the library never imports the recipe runner, the studies, a recipe or a benchmark,
nothing outside ``run/`` reaches into its modules, and ``benchmarks/`` uses public names only and
never edits ``sys.path``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hrkd_trainer"
ROOT = "hrkd_trainer"
MAX_LINES = 450
#: the runner, the studies built on it, and the 0.1 shim; everything else is "the library"
RUNNER = (
    "hrkd_trainer.run", "hrkd_trainer.study", "hrkd_trainer.pipeline", "hrkd_trainer.cli", "hrkd_trainer.__main__",
)  # fmt: skip
REPO = PACKAGE.parent


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def import_graph() -> dict[str, set[str]]:
    """``module → modules of the package it imports`` (every import statement, at any depth; ``from .x
    import y`` counts as an edge to ``x.y`` when that is a module, else to ``x``)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = {name for name, _ in files}
    graph: dict[str, set[str]] = {}
    for (name, is_package), path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    candidate = f"{source}.{alias.name}"
                    targets.add(candidate if candidate in modules else source)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == ROOT:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and node != ROOT and (cycle := visit(node)):
            return cycle
    return None


def test_the_guard_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    graph = import_graph()
    assert len(graph) > 30 and "hrkd_trainer.trainer" in graph
    assert "hrkd_trainer.results" in graph["hrkd_trainer.hub"]  # the graph sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, " → ".join(cycle)


def test_the_library_never_imports_the_runner_or_a_recipe():
    graph = import_graph()
    for module, targets in graph.items():
        if module == ROOT or module.startswith(RUNNER):
            continue
        reached = sorted(t for t in targets if t.startswith(RUNNER))
        assert not reached, f"{module} imports {reached}"
    for path in PACKAGE.rglob("*.py"):  # the scripts in recipes/ (run/recipes.py is the runner's own)
        assert "recipes" not in {
            a.module
            for a in ast.walk(ast.parse(path.read_text()))
            if isinstance(a, ast.ImportFrom) and not a.level
        }


def imports_of(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every absolute ``from hrkd_trainer... import name`` and ``import
    hrkd_trainer...`` (name ``""``) in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith(ROOT):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith(ROOT)]
    return found


def test_the_study_layer_is_above_the_runner_and_nothing_outside_run_reaches_into_it():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("hrkd_trainer.run"):
            assert not [t for t in targets if t.startswith("hrkd_trainer.study")], module
            continue
        inner = sorted(t for t in targets if t.startswith("hrkd_trainer.run."))
        assert not inner, (
            f"{module} imports the runner's internals {inner}: use the names of hrkd_trainer.run"
        )
    outside = [*(REPO / "recipes").glob("*.py"), *(REPO / "benchmarks").glob("*.py"), REPO / "hub_upload.py"]
    for path in outside:
        inner = [m for m, _ in imports_of(path) if m.startswith("hrkd_trainer.run.")]
        assert not inner, f"{path.name} imports {inner}: use the names of hrkd_trainer.run"


def test_the_library_never_imports_a_benchmark():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+benchmarks\b", text, re.M), path
        assert not ("importlib" in text and "benchmarks" in text), f"{path} loads a benchmark script"


def test_benchmarks_use_public_names_only_and_leave_sys_path_alone():
    import importlib

    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    assert scripts
    for path in scripts:
        assert "sys.path" not in path.read_text(), f"{path.name} edits sys.path"
        for module, name in imports_of(path):
            assert not any(part.startswith("_") for part in module.split(".")), (path.name, module)
            assert not name.startswith("_"), (path.name, module, name)
            public = getattr(importlib.import_module(module), "__all__", None)
            if name and public is not None:
                assert name in public, f"{path.name}: {name} is not among {module}'s public names"


def test_benchmarks_stay_thin():
    lines = sum(len(p.read_text().splitlines()) for p in (REPO / "benchmarks").glob("*.py"))
    assert lines <= 1500, (
        f"benchmarks/ has {lines} lines of Python: move the protocol into hrkd_trainer.study"
    )


def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


#: the public names of release 0.1's ``hrkd_trainer/__init__.py``
RELEASE_0_1_NAMES = [
    "TEACHER_TYPES",
    "DistillationModel",
    "DomainBatchSampler",
    "DomainExperts",
    "HRKDConfig",
    "HRKDTrainer",
    "HiddenProjections",
    "LayerMap",
    "LoraSettings",
    "MetaDistillConfig",
    "MetaDistillTrainer",
    "MetaTeacherConfig",
    "MetaTeacherTrainer",
    "MixedBatchSampler",
    "MultiDomainArguments",
    "MultiDomainCollator",
    "MultiDomainModel",
    "MultiDomainOutput",
    "MultiDomainTrainer",
    "PublishError",
    "RelationalBalancer",
    "add_lora",
    "check_token_alignment",
    "distill_per_domain",
    "load_multi_domain",
    "merge_lora",
    "model_card",
    "parse_layer_map",
    "publish_run",
    "same_tokenizer",
    "stage_run",
    "tokenize_multi_domain",
    "train_teacher",
    "uniform_layer_map",
]


def test_release_0_1_names_still_import():
    import hrkd_trainer
    import hrkd_trainer.pipeline as pipeline
    import hrkd_trainer.trainer as trainer

    assert set(RELEASE_0_1_NAMES) <= set(hrkd_trainer.__all__)
    assert all(getattr(hrkd_trainer, name) is not None for name in hrkd_trainer.__all__)
    for name in ("parse_recipe_args", "run_recipe", "offline_minilm_path", "evaluate_per_domain", "by_domain",
                 "machine_description", "require_inputs", "METHODS", "DEFAULT_HRKD_MODE"):  # fmt: skip
        assert hasattr(pipeline, name), name
    for name in ("AUX_WEIGHTS_NAME", "STUDENT_INPUTS", "MultiDomainTrainer", "HRKDTrainer", "StepSeeds"):
        assert hasattr(trainer, name), name
