"""SQL functions whose source is a file beside the code that calls them.

Migrations install each file as it is with ``InstallSQL``, naming the version of the file they
were written for. A test fails when a file changed and no migration installs its new version,
and when the functions the migrated database runs differ from the files.
"""

import hashlib
from pathlib import Path

from django.db import migrations

ROOT = Path(__file__).resolve().parent.parent


def sql_version(path: str) -> str:
    """The version of a file of the repository: the start of its SHA-256."""
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:16]


class InstallSQL(migrations.RunSQL):
    """Run an SQL file of the repository (``CREATE OR REPLACE`` statements) as it is now."""

    def __init__(self, path: str, version: str):
        self.path, self.version = path, version
        super().__init__((ROOT / path).read_text(), migrations.RunSQL.noop)

    def deconstruct(self):
        return (self.__class__.__qualname__, [], {"path": self.path, "version": self.version})

    def describe(self) -> str:
        return f"Install {self.path} ({self.version})"
