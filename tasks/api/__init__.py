"""The tasks app over REST, one module per area.

- ``projects``: projects, their members and staffing.
- ``import_export``: task imports (upload, list, progress) and the streamed export.
- ``work``: claims, assignments (heartbeat, release, submit) and annotations.

Each view parses its input, checks the caller's role, calls one service or selector and
serializes the answer; the rules live in ``tasks.services`` and ``tasks.selectors``.
"""
