"""Several models' rows read by one hand-written statement, as the ORM's own instances.

The hottest reads of a request (the member behind a token, the assignment a submit acts on)
join a few tables on every call. Through the ORM each such read is compiled again at every
request, which costs more than running it; written once here, it is one prepared statement
(``DB_PREPARE_THRESHOLD``) whose row is split into the instances ``select_related`` would have
built, with the same field conversions.
"""

import functools

from django.db import connection
from django.db.models import Model, signals
from django.db.models.base import ModelState


class JoinedRows:
    """The columns of ``(model, alias)`` pairs, in order, and the instances of one row of them.

    Write the statement with ``columns`` as its select list and ``table(alias)`` for the table
    names; ``instances(row)`` then returns one instance per model, in the same order (a model
    whose row a LEFT JOIN did not find comes back with every field None, ``pk`` included).

    ``deferred`` names, per alias, fields left unread, as ``QuerySet.defer`` leaves them: the
    instance reads one when it is first used, with a query of its own. Each timestamp or JSON
    value costs a conversion in Python when read, so a hot read leaves out those it never uses.
    """

    def __init__(
        self,
        tables: list[tuple[type[Model], str]],
        deferred: dict[str, tuple[str, ...]] | None = None,
    ):
        self.tables = tables
        deferred = dict(deferred or {})
        # Per table: its model, alias, and the fields read, in the order of the select list.
        self._read = []
        for model, alias in tables:
            left_out = set(deferred.pop(alias, ()))
            fields = [f for f in model._meta.concrete_fields if f.attname not in left_out]
            unknown = left_out - {field.attname for field in model._meta.concrete_fields}
            if unknown:
                raise ValueError(f"Not fields of {model.__name__}: {sorted(unknown)}")
            self._read.append((model, alias, fields))
        if deferred:
            raise ValueError(f"Not aliases of these tables: {sorted(deferred)}")
        self.columns = ", ".join(
            f'{alias}."{field.column}"' for _, alias, fields in self._read for field in fields
        )

    def table(self, alias: str) -> str:
        return next(model._meta.db_table for model, name in self.tables if name == alias)

    def instances(self, row) -> list[Model]:
        instances, start = [], 0
        for model, names, converted, build in self._readers():
            values = list(row[start : start + len(names)])
            for i, column, converters in converted:
                for convert in converters:
                    values[i] = convert(values[i], column, connection)
            instances.append(build(model, names, values))
            start += len(names)
        return instances

    @functools.cache  # noqa: B019 - one per module-level instance, for the process's life
    def _readers(self) -> list:
        """Per model: its field names, and the fields the ORM converts when reading them (JSON)
        with their position, column and converters."""
        readers = []
        for model, alias, fields in self._read:
            converted = []
            for i, field in enumerate(fields):
                column = field.get_col(alias)
                converters = connection.ops.get_db_converters(column) + field.get_db_converters(
                    connection
                )
                if converters:
                    converted.append((i, column, converters))
            # A model that something watches being built goes through its ``__init__``.
            watched = signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(
                model
            )
            build = _from_db if watched else _loaded
            readers.append((model, [field.attname for field in fields], converted, build))
        return readers


def _from_db(model: type[Model], names: list[str], values: list) -> Model:
    return model.from_db(connection.alias, names, values)


def _loaded(model: type[Model], names: list[str], values: list) -> Model:
    """What ``Model.from_db`` builds, without its ``__init__``: that walks every field of the
    model and sends two signals, and took a third of a request's authentication. A field left
    out reads itself when first used, as a deferred one does."""
    instance = model.__new__(model)
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = connection.alias
    instance.__dict__.update(zip(names, values, strict=True))
    return instance
