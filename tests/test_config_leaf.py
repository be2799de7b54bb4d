"""``config`` is a leaf: its modules import none of the apps (``workforce``, ``tasks``, ``qa``).

Three modules exist to wire the apps together and are exempt: ``config.urls`` (the HTTP
routes), ``config.asgi`` (the WebSocket routes) and ``config.wsgi`` (which sets Django up, and
so loads every installed app). The settings name the apps only as strings, and ``config.celery``
finds their jobs lazily, once Django is set up; both are checked like the rest.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("workforce", "tasks", "qa")
WIRING = {"config.urls", "config.asgi", "config.wsgi"}


def _config_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((ROOT / "config").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in WIRING:
            modules[name] = path
    return modules


def _imported(tree: ast.Module) -> list[str]:
    """Every module an import statement anywhere in ``tree`` names, functions' included."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_config_module_names_an_app_in_an_import():
    offending = [
        f"{name} imports {imported}"
        for name, path in _config_modules().items()
        for imported in _imported(ast.parse(path.read_text()))
        if imported.split(".")[0] in APPS
    ]
    assert not offending, offending


# Run in a fresh interpreter with Django set up without the apps, any import of one refused.
_IMPORT_ALL = """
import importlib, json, sys

import django
from django.conf import settings

APPS = set(json.loads(sys.argv[1]))


class RefuseApps:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in APPS:
            raise ImportError(f"config imported {name}")
        return None


sys.meta_path.insert(0, RefuseApps())
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    DATABASES={},
)
django.setup()
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in APPS)))
"""


def test_config_modules_import_and_load_no_app():
    modules = sorted(_config_modules())
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, json.dumps(APPS), json.dumps(modules)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "k" * 64},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert {"config.api", "config.errors", "config.settings.base"} <= set(modules)
