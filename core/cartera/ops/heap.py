"""The heap of a long-running process (``cartera serve``, ``cartera worker``, ``cartera
events deliver``)."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Put what start-up built (modules, routes, schemas, the plugins, compiled statements)
    out of the garbage collector's reach (:func:`gc.freeze`), after collecting what it left
    behind. Called once, when the process is ready to work.

    A request or a batch allocates hundreds of container objects (a list page's decoded
    debtors alone are over a thousand), so the collector runs about once a request, and
    each of its older-generation passes walked every start-up object again: CPU on every
    request and a pause on some. Those objects live as long as the process, so freezing
    loses nothing; what the work creates is collected as before."""
    gc.collect()
    gc.freeze()
