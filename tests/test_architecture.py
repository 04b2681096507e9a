"""The import rules of docs/architecture.md, checked on the source (a small AST walk, no imports run).

Each rule names a package (or module) and what it must never import, function-level imports
included: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WEB = ("fastapi", "starlette", "uvicorn", "jinja2")
TRAINING_STACK = ("torch", "transformers", "datasets", "training", "belonging_cli", "sklearn", "scipy")

# (package or module, prefixes it may not import, prefixes exempted from those)
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("serving", TRAINING_STACK, ()),
    ("serving.labels", ("serving", *WEB, "sqlalchemy"), ("serving.labels",)),
    ("serving.timefmt", ("serving", *WEB, "sqlalchemy"), ()),
    ("serving.worker", ("serving", *WEB, "sqlalchemy"), ()),
    (
        "serving.engine",
        (*WEB, "sqlalchemy", "alembic", "serving"),
        ("serving.engine", "serving.labels", "serving.worker"),
    ),
    (
        "serving.storage",
        (*WEB, "serving"),
        ("serving.storage", "serving.labels", "serving.timefmt", "serving.worker"),
    ),
    ("serving.runtime", (*WEB, "serving.api", "serving.moderation"), ()),
    ("serving.settings", (*WEB, "serving.api", "serving.moderation"), ()),
    ("serving.api", ("serving.moderation",), ()),
    # The stream consumer: a door beside the HTTP one; it shares the API's comment schema only.
    (
        "serving.consumer",
        (*WEB, "serving.api", "serving.moderation", "serving.runtime"),
        ("serving.api.schemas",),
    ),
    ("serving.moderation", ("serving.api",), ("serving.api.deps",)),
    ("training", ("serving", "belonging_cli"), ("serving.engine", "serving.labels")),
    # Batch scoring on data engines: the engine only.
    ("serving.batch", (*WEB, "sqlalchemy", "alembic", "serving"), ("serving.batch", "serving.engine")),
    # The public Python API: the engine only, so `import belonging` loads no web stack or database.
    ("belonging", (*WEB, "sqlalchemy", "alembic", "serving", *TRAINING_STACK), ("serving.engine",)),
]
# The one place the API mounts the pages: the app factory composes both.
ALLOWED = {("serving.api.app", "serving.moderation")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def sources(package: str) -> list[Path]:
    base = ROOT.joinpath(*package.split("."))
    if base.with_suffix(".py").is_file():
        return [base.with_suffix(".py")]
    return sorted(p for p in base.rglob("*.py") if "migrations" not in p.parts)


def violations() -> list[str]:
    out = []
    for package, forbidden, exempt in RULES:
        files = sources(package)
        assert files, f"no sources for {package}: update the rules with the layout"
        for path in files:
            module = module_name(path)
            for name in sorted(imports_of(path)):
                if any(under(name, e) for e in exempt) or any(
                    (module, p) in ALLOWED for p in forbidden if under(name, p)
                ):
                    continue
                hit = next((p for p in forbidden if under(name, p)), None)
                if hit:
                    out.append(f"{module} imports {name} (rule: {package} never imports {hit})")
    return out


def test_import_rules_hold():
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "imported", "rule"),
    [
        ("serving.engine.predictor", "fastapi", "serving.engine never imports fastapi"),
        ("serving.api.routes.flags", "torch", "serving never imports torch"),
        ("serving.storage.threads", "serving.api.schemas", "serving.storage never imports serving"),
        ("serving.moderation.pages", "serving.api.routes.flags", "serving.moderation never imports serving.api"),
    ],
)
def test_the_rules_catch_a_forbidden_import(module, imported, rule, monkeypatch):
    real = imports_of

    def with_extra(path: Path) -> set[str]:
        found = real(path)
        return found | {imported} if module_name(path) == module else found

    monkeypatch.setitem(globals(), "imports_of", with_extra)
    assert any(rule in v and v.startswith(f"{module} imports {imported}") for v in violations())
