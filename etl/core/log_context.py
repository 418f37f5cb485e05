"""What a log record is about: the run, account and workspace of the code that logs it.

The sync binds these once where it knows them (``log_fields``), and every record logged
inside, by keyledger or by a library, carries them (``LogContextFilter``, installed on
the handler by the command line), so code that already logs needs no extra arguments.
The fields live in a context variable: threads do not inherit it, so the pools that
run work for a workspace copy the submitter's context into each task
(``ContextThreadPoolExecutor``).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

# The record attributes the fields land in, in the order a line shows them.
CONTEXT_FIELDS = ("run_id", "account", "workspace")

_fields: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "keyledger_log_fields", default=None
)

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def log_fields(**fields: object) -> Iterator[None]:
    """Attach ``fields`` (run_id, account, workspace) to every record logged inside."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


class LogContextFilter(logging.Filter):
    """A handler filter that sets each context field the record does not carry yet
    (a field passed in ``extra`` wins); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _fields.get() or {}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, bound.get(name))
        return True


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the context they were submitted from,
    so what a fetch thread logs names the workspace its page belongs to."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(functools.partial(context.run, fn, *args, **kwargs))
