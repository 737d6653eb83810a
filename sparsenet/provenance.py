"""What a run.json records besides the settings: code identity, code version, library versions, device.

A job's code identity is a hash of the sources of the modules its command imports, found from the package's
import graph (read with `ast`, not kept by hand): the command's own function in sparsenet.cli and everything it
imports, module-level and inside functions, transitively; plus the modules its settings import by name (the
run's algorithm, sparsenet.algorithms imports it on demand, and a user's own model, dataset or algorithm named by
import path). One identity goes into the rule's parameters, the checkpoint and run.json, so an edit reruns
exactly the jobs whose command imports the edited module.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import torch

if TYPE_CHECKING:
    from sparsenet.config import RunConfig

PACKAGE = "sparsenet"
PACKAGE_DIR = Path(__file__).parent
ENTRY = "sparsenet.cli"  # `python -m sparsenet` runs sparsenet/__main__.py, which runs its main()
# Files of the package left out of every identity, by name, with the reason. (Nothing else may be left out.)
NOT_IN_IDENTITY = {
    "sparsenet/recipes/*.yaml": "presets are expanded into each job's settings before the rules see them, so a "
                                "preset edit reruns exactly the runs whose settings it changes",
    "sparsenet/schemas/*.yaml": "the study config's schema: it checks a study and fills its defaults before the "
                                "rules see it, and every job gets its settings explicitly",
}


def _module_file(module: str, package_dir: Path) -> Path | None:
    """The source file of a module of the package, or None if `module` is not one."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, package_dir: Path) -> set[str]:
    """The package's modules an import statement in `module` imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # relative: from the module's package, up node.level - 1 more
            anchor = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]  # `from a import b`: b may be a module
    found = set()
    for name in names:
        if _module_file(name, package_dir) is not None:
            found.update(m for m in _with_parents(name) if _module_file(m, package_dir) is not None)
    return found


@functools.lru_cache(maxsize=None)
def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str | None, frozenset[str]]]:
    """module -> {function: modules imported inside that top-level function, None: at module level}."""
    graph: dict[str, dict[str | None, frozenset[str]]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        is_package = rel.name == "__init__"
        module = ".".join(rel.parts[:-1] if is_package else rel.parts)
        edges: dict[str | None, set[str]] = {None: set()}
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for top in tree.body:
            owner = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            for node in ast.walk(top):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    edges.setdefault(owner, set()).update(_targets(node, module, is_package, package_dir))
        graph[module] = {k: frozenset(v) for k, v in edges.items()}
    return graph


def closure(roots: Iterable[str], package_dir: Path = PACKAGE_DIR, done: Iterable[str] = ()) -> set[str]:
    """The modules of the package that importing `roots` may import, transitively (any function's imports count);
    the modules in `done` are taken as they are, not followed."""
    graph = import_graph(package_dir)
    seen: set[str] = set(done)
    todo = [m for root in roots for m in _with_parents(root) if m in graph]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(m for imported in graph[module].values() for m in imported)
    return seen


def command_modules(command: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The modules `sparsenet <command>` imports: sparsenet.cli at module level and in every function but the
    other commands' (cmd_<name>), its own command function, and all they import."""
    own = f"cmd_{command.replace('-', '_')}"
    cli = import_graph(package_dir)[ENTRY]
    if own not in cli:
        raise KeyError(f"sparsenet.cli has no command function {own}")
    entry = {ENTRY, f"{PACKAGE}.__main__"}  # __main__ imports only cli, and cli is taken function by function
    roots = {PACKAGE}
    for function, modules in cli.items():
        if function is None or function == own or not function.startswith("cmd_"):
            roots.update(modules)
    return closure(roots, package_dir, done=entry)


def settings_modules(cfg: RunConfig, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package's modules the run's settings import by name: its algorithm's, the package's modules that a
    user's own model, dataset or algorithm imports (a class built on rigl's, say), and what they import."""
    from sparsenet.algorithms import modules

    roots = set(modules(cfg.algorithm.algorithm, frozen=cfg.algorithm.freeze_epoch > 0))
    for path in own_files(cfg):
        tree = ast.parse(path.read_bytes(), filename=str(path))
        roots.update(m for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                     for m in _targets(node, path.stem, False, package_dir))
    return closure(roots, package_dir)


def own_files(cfg: RunConfig) -> list[Path]:
    """The source files of a user's own model, dataset or algorithm named by import path (package.module:name)."""
    files = []
    for name in (cfg.model.model, cfg.data.dataset, cfg.algorithm.algorithm):
        if ":" in name:
            spec = importlib.util.find_spec(name.split(":", 1)[0])
            if spec is not None and spec.origin:
                files.append(Path(spec.origin))
    return files


def identity(command: str, cfg: RunConfig | None = None, package_dir: Path = PACKAGE_DIR) -> str:
    """The code identity of a job of `command` (with the run settings it reads, where it has some)."""
    modules = command_modules(command, package_dir) | (settings_modules(cfg, package_dir) if cfg else set())
    sources = [_module_file(m, package_dir) for m in sorted(modules)]
    return code_hash(sources + (own_files(cfg) if cfg else []), package_dir)


def code_hash(paths: list[Path], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the given sources, each named by its path (inside the package, relative to it)."""
    h = hashlib.sha256()
    for f in paths:
        name = f.relative_to(package_dir.parent) if f.is_relative_to(package_dir.parent) else Path(f.name)
        h.update(f"{name.as_posix()}\n".encode())
        h.update(_digest(f, f.stat().st_mtime_ns, f.stat().st_size).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _digest(path: Path, mtime_ns: int, size: int) -> str:  # the stat in the key: an edited file is read again
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "pandas", "pyarrow", "sparsenet"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model as Linux names it (`platform.processor()` there gives only the architecture), else what
    `platform` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The device a figure was measured on: the GPU's name, or the CPU's model and the threads used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def describe(device: torch.device, code: str) -> dict:
    return {"git_commit": git_commit(), "code_hash": code, "versions": versions(),
            "device": device_name(device), "host": platform.node()}
