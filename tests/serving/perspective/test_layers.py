"""Import rules of docs/architecture.md for issue 10's packages (same AST walk as tests/test_architecture.py)."""

from __future__ import annotations

import pytest

from tests.test_architecture import WEB, imports_of, module_name, sources, under

RULES = [
    ("serving.perspective", ("serving.moderation",)),
    ("serving.integrations", ("serving.moderation",)),
    ("serving.webhooks", (*WEB, "serving.api", "serving.moderation", "serving.engine")),
]


@pytest.mark.parametrize(("package", "forbidden"), RULES)
def test_new_packages_keep_their_layer(package, forbidden):
    found = [
        f"{module_name(path)} imports {name}"
        for path in sources(package)
        for name in sorted(imports_of(path))
        if any(under(name, f) for f in forbidden)
    ]
    assert found == []
