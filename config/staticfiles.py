"""Static files that installed packages ship, served under ``vendor/``.

The pages draw their charts with plotly.js, which the ``plotly`` package (a dependency in
pyproject.toml) ships as one file. This finder hands Django's staticfiles, and so whitenoise and
``collectstatic``, exactly the files listed here, read from the installed package: no
third-party code is copied into the repository, and upgrading the package upgrades what pages
load. A package's other data (plotly's datasets, its widget bundle) stays out of ``STATIC_ROOT``.
"""

from importlib.util import find_spec
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

# Static path -> (package, file inside the package).
PACKAGE_FILES = {
    "vendor/plotly/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _package_file(package: str, inner: str) -> Path | None:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    return path if path.is_file() else None


class PackageFileFinder(BaseFinder):
    """Find the files of ``PACKAGE_FILES`` in their installed packages."""

    def check(self, **kwargs):
        return [
            Error(
                f"{package} does not ship {inner}, which the pages load as {path}.",
                hint="Install the project's dependencies (pyproject.toml).",
                id="assay.E001",
            )
            for path, (package, inner) in PACKAGE_FILES.items()
            if _package_file(package, inner) is None
        ]

    def find(self, path, find_all=False, **kwargs):
        found = PACKAGE_FILES.get(path)
        located = _package_file(*found) if found else None
        if located is None:
            # Django's own finders answer an empty list for a path they do not know.
            return []
        return [str(located)] if find_all or kwargs.get("all") else str(located)

    def list(self, ignore_patterns):
        for path, (package, inner) in PACKAGE_FILES.items():
            located = _package_file(package, inner)
            if located is None:
                continue
            # A storage rooted at the file's folder, with the static path's folder as prefix, as
            # collectstatic expects of AppDirectoriesFinder's storages.
            storage = FileSystemStorage(location=located.parent)
            storage.prefix = str(Path(path).parent)
            yield located.name, storage
