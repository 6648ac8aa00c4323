"""What the stress tests share: their sizes, the loop kinds, and the built-in policies.

Sizes: every stress test takes its size from :func:`size`, which gives the CI size unless
the environment variable ``AIOCONTEXT_STRESS`` is ``full``::

    AIOCONTEXT_STRESS=full python -m pytest -p no:cacheprovider --no-cov tests/stress

(about 11 minutes on two cores; ``--no-cov`` because coverage tracing makes it several
times slower). The CI sizes keep the whole folder well under a minute per Python, both
loops included.

The figures a test measured (tasks, threads, memory before and after) are printed at the
end of the run under "aiocontext stress figures" (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Final

from aiocontext import ChainMap, Copy, DeepCopy, PropagationPolicy, Share
from conftest import LOOP_FACTORIES, skip_if_eager_factory_broken

STRESS_ENV: Final = "AIOCONTEXT_STRESS"


def _full() -> bool:
    value = os.environ.get(STRESS_ENV, "").strip().lower()
    if value not in ("", "ci", "full"):
        raise ValueError(f"{STRESS_ENV} must be 'ci' (the default) or 'full', got {value!r}")
    return value == "full"


#: Whether the full sizes run (``AIOCONTEXT_STRESS=full``), rather than the CI sizes.
FULL: Final = _full()


def size(ci: int, full: int) -> int:
    """The size of a stress run: ``ci`` by default, ``full`` under ``AIOCONTEXT_STRESS=full``."""
    return full if FULL else ci


#: The loop implementations every stress test runs on ("asyncio", "uvloop").
LOOP_KINDS: Final = sorted(LOOP_FACTORIES)

#: One instance of each built-in policy, by name.
POLICIES: Final[dict[str, PropagationPolicy]] = {
    "Share": Share(),
    "Copy": Copy(),
    "DeepCopy": DeepCopy(),
    "ChainMap": ChainMap(),
}

#: The task factories a loop can have under the wrapper: none, or asyncio's eager one.
FACTORIES: Final = ("lazy", "eager")


def new_loop(kind: str, factory: str = "lazy") -> asyncio.AbstractEventLoop:
    """A new loop of ``kind``, with ``asyncio.eager_task_factory`` set if ``factory`` says so.

    Call :func:`skip_unless_factory_works` first: where the eager factory does not work the
    loop is made without it.
    """
    loop = LOOP_FACTORIES[kind]()
    if factory == "eager" and sys.version_info >= (3, 12):
        loop.set_task_factory(asyncio.eager_task_factory)
    return loop


def skip_unless_factory_works(kind: str, factory: str) -> None:
    """Skip where ``factory`` cannot run on a loop of ``kind`` even without aiocontext
    (see ``skip_if_eager_factory_broken`` in ``tests/conftest.py``)."""
    if factory != "eager":
        return
    probe = LOOP_FACTORIES[kind]()
    probe.close()
    skip_if_eager_factory_broken(probe)
