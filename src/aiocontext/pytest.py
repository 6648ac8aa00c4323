"""A pytest plugin: each test gets fresh context data on its own loop, and must not leak it.

Installing aiocontext registers this plugin with pytest (entry point ``pytest11``). It does
nothing until a test asks for its fixtures, and needs pytest-asyncio, whose event loops it
works on.

Say which contexts your tests use, in your pytest configuration::

    [pytest]
    aiocontext_contexts = myapp.context:request myapp.context:tenant

or by overriding the ``aiocontext_contexts`` fixture (in a ``conftest.py``, a module or a
class)::

    @pytest.fixture
    def aiocontext_contexts():
        return (request, tenant)

then request the ``aiocontext`` fixture::

    @pytest.mark.asyncio
    async def test_handler(aiocontext):
        request["id"] = "r-1"     # this test's own data, empty at the start
        ...

The fixture runs on the loop pytest-asyncio runs the test on, whatever its loop scope, and:

* attaches the contexts to that loop (and detaches at the end those it attached);
* gives the test fresh data: every context starts as ``policy.root()`` (empty), whatever
  earlier tests or wider-scoped fixtures left behind. Seed data in function-scoped fixtures
  that request ``aiocontext``; the test sees what they write;
* fails the test (an error at teardown) that leaves tasks running with its data on a loop
  that outlives it (loop scope ``class``, ``module``, ``package`` or ``session``): they would
  run on during the tests that follow, with this test's data. They are cancelled. Tasks
  started elsewhere (a server started by a module-scoped fixture, and the tasks it
  spawns) are not the test's and are left alone; on a function-scoped loop pytest-asyncio
  cancels whatever is left, so nothing can leak and nothing is checked. The check runs when
  ``aiocontext`` is torn down, after the fixtures set up after it: if a fixture stops tasks
  the test starts through it, request ``aiocontext`` first. It needs
  ``Task.get_context()`` (Python 3.12+); on 3.11 it is skipped.

To have contexts attached to every test's loop from the start instead (no fixture needed),
give pytest-asyncio loop factories that attach them, in a ``conftest.py``::

    import aiocontext
    from myapp.context import request

    def pytest_asyncio_loop_factories(config, item):
        return {"asyncio": aiocontext.loop_factory(request)}

Each test on a function-scoped loop then starts with fresh data by construction; add the
``aiocontext`` fixture to tests on wider loops for the fresh data and the leak check.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import re
import sys
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from typing import Any, Final, Literal, cast, get_args

import pytest
from typing_extensions import TypeIs

from ._context import Context, is_context

__all__ = ["aiocontext", "aiocontext_contexts", "pytest_addoption"]

_LoopScope = Literal["function", "class", "module", "package", "session"]
_LOOP_SCOPES: Final[tuple[_LoopScope, ...]] = get_args(_LoopScope)

_INI: Final = "aiocontext_contexts"
_LEAK_WAIT: Final = 1.0  # seconds leaked tasks get to finish once cancelled

# Set to a marker object for the duration of each test that uses the ``aiocontext`` fixture.
# Every task the test (or a fixture set up for it later) creates copies it along with the
# contexts' data, so a task holding it holds the test's data.
_TEST: contextvars.ContextVar[object] = contextvars.ContextVar("aiocontext.pytest test")

_MIN_PYTEST_ASYNCIO: Final = (1, 0)
_NEEDS_PYTEST_ASYNCIO: Final = (
    "the aiocontext fixture runs on pytest-asyncio's event loops, and pytest-asyncio 1.0 or "
    "newer is not active: install it (pip install 'pytest-asyncio>=1.0') and do not disable "
    "it (-p no:asyncio)"
)


def _is_iterable(value: object) -> TypeIs[Iterable[object]]:
    return isinstance(value, Iterable)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``aiocontext_contexts`` configuration option."""
    parser.addini(
        _INI,
        type="args",
        default=[],
        help="contexts the aiocontext fixture attaches, as package.module:ATTRIBUTE names "
        "separated by spaces",
    )


@pytest.fixture
def aiocontext_contexts(pytestconfig: pytest.Config) -> Sequence[Context[Any, Any]]:
    """The contexts the ``aiocontext`` fixture attaches: override it to choose them.

    By default, the contexts named by the ``aiocontext_contexts`` configuration option
    (``package.module:ATTRIBUTE`` names separated by spaces). Override it in a
    ``conftest.py``, a test module or a class to return a sequence of contexts instead.
    """
    names: list[str] = pytestconfig.getini(_INI)
    if not names:
        pytest.fail(
            "the aiocontext fixture has no contexts to attach: name them in your pytest "
            f"configuration ({_INI} = package.module:ATTRIBUTE ...), or override the "
            "aiocontext_contexts fixture to return them, e.g. `return (request,)`",
            pytrace=False,
        )
    return tuple(_resolve(name) for name in names)


@pytest.fixture
def aiocontext(request: pytest.FixtureRequest) -> tuple[Context[Any, Any], ...]:
    """Attach the contexts to the test's loop, give the test fresh data, check for leaks.

    The contexts are those of the ``aiocontext_contexts`` fixture, and the value is them, as
    a tuple. For async tests run by pytest-asyncio, with any loop scope: every context
    starts empty in the test (``policy.root()``), function-scoped fixtures that request
    ``aiocontext`` can seed it, and a test that leaves tasks running with its data on a loop
    that outlives it fails at teardown (Python 3.12+).
    """
    plugin = sys.modules.get("pytest_asyncio.plugin")  # imported by _define_fixtures()
    if not (_HAS_FIXTURES and request.config.pluginmanager.is_registered(plugin)):
        pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)
    contexts: tuple[Context[Any, Any], ...] = request.getfixturevalue(
        _fixture_name(_loop_scope(request))
    )
    return contexts


def _loop_scope(request: pytest.FixtureRequest) -> _LoopScope:
    """The scope of the loop pytest-asyncio runs the requesting test on (as it computes it)."""
    marker = request.node.get_closest_marker("asyncio")
    if marker is None:
        pytest.fail(
            f"{request.node.nodeid} requests the aiocontext fixture but is not an asyncio "
            "test: make it an `async def` test marked @pytest.mark.asyncio (or set "
            "asyncio_mode = auto). In a synchronous test, use `with ctx.restore({}):`",
            pytrace=False,
        )
    # pytest-asyncio validated the scope when it collected the test.
    return cast(
        _LoopScope,
        marker.kwargs.get("loop_scope")
        or marker.kwargs.get("scope")
        or request.config.getini("asyncio_default_test_loop_scope"),
    )


def _fixture_name(loop_scope: _LoopScope) -> str:
    return f"_aiocontext_on_{loop_scope}_loop"


def _resolve(name: str) -> Context[Any, Any]:
    """The Context a ``package.module:ATTRIBUTE`` name from the configuration names."""
    module_name, colon, path = name.partition(":")
    where = f"{_INI} names {name!r}"
    if not (colon and module_name and path):
        pytest.fail(
            f"{where}: write package.module:ATTRIBUTE, e.g. myapp.context:request", pytrace=False
        )
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as error:
        pytest.fail(
            f"{where}, but module {module_name!r} cannot be imported ({error}): check the "
            "module path, and that it is importable from the tests (pythonpath setting)",
            pytrace=False,
        )
    for attribute in path.split("."):
        try:
            found = getattr(found, attribute)
        except AttributeError:
            pytest.fail(
                f"{where}, but {module_name!r} has no attribute {path!r}: check the name "
                "after the colon",
                pytrace=False,
            )
    if not is_context(found):
        pytest.fail(
            f"{where}, which is {type(found).__name__} {found!r}, not an aiocontext.Context",
            pytrace=False,
        )
    return found


def _checked(contexts: object) -> tuple[Context[Any, Any], ...]:
    """The ``aiocontext_contexts`` fixture's value as a tuple; else the error saying why."""
    if is_context(contexts) or isinstance(contexts, str) or not _is_iterable(contexts):
        raise TypeError(
            f"the aiocontext_contexts fixture must return a sequence of aiocontext.Context "
            f"objects, such as `return (request,)`; it returned {type(contexts).__name__} "
            f"{contexts!r}"
        )
    result: list[Context[Any, Any]] = []
    for context in contexts:
        if not is_context(context):
            raise TypeError(
                f"the aiocontext_contexts fixture must return aiocontext.Context objects; it "
                f"returned {type(context).__name__} {context!r} among them"
            )
        result.append(context)
    return tuple(result)


class _Isolation:
    """One test's use of the ``aiocontext`` fixture: set-up, leak check, and report."""

    __slots__ = ("_contexts", "_leaked", "_loop_scope", "_nodeid")

    def __init__(self, contexts: tuple[Context[Any, Any], ...], loop_scope: str, nodeid: str):
        self._contexts = contexts
        self._loop_scope = loop_scope
        self._nodeid = nodeid
        self._leaked: list[str] = []

    @property
    def contexts(self) -> tuple[Context[Any, Any], ...]:
        """The contexts, as the ``aiocontext`` fixture gives them to the test."""
        return self._contexts

    @contextlib.contextmanager
    def fresh_data(self) -> Generator[object]:
        """Attach, give every context fresh data, and mark the test's contextvars context."""
        loop = asyncio.get_running_loop()
        attached = [ctx for ctx in self._contexts if not ctx.is_attached(loop)]
        test = object()
        with contextlib.ExitStack() as stack:
            for context in attached:
                context.attach(loop)
                stack.callback(context.detach, loop)
            for context in self._contexts:
                stack.enter_context(context.restore({}))
            token = _TEST.set(test)
            stack.callback(_TEST.reset, token)
            yield test

    async def check(self, test: object) -> None:
        """Cancel and record the tasks carrying the test's data, where they would outlive it."""
        if self._loop_scope == "function":
            return  # pytest-asyncio closes the loop after the test, cancelling what is left
        await asyncio.sleep(0)  # tasks that are finishing (cancelled ones, say) end now
        current = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not current and _carries(t, test)]
        if leaked:
            self._leaked = [repr(task) for task in leaked]
            for task in leaked:
                task.cancel()
            await asyncio.wait(leaked, timeout=_LEAK_WAIT)

    def report(self) -> None:
        """Fail the test if it leaked (run after pytest-asyncio reset the contextvars)."""
        if self._leaked:
            tasks = "".join(f"\n    {task}" for task in self._leaked)
            pytest.fail(
                f"{self._nodeid} left {len(self._leaked)} task(s) running with its aiocontext "
                f"data on a {self._loop_scope}-scoped event loop, which outlives the test: they "
                f"would go on running during the tests that follow.{tasks}\n"
                "They have been cancelled. Await every task a test starts before it returns "
                "(asyncio.TaskGroup does), or cancel and await them in the teardown of the "
                "fixture that starts them.",
                pytrace=False,
            )


if sys.version_info >= (3, 12):

    def _carries(task: asyncio.Task[Any], test: object) -> bool:
        return task.get_context().get(_TEST) is test

else:

    def _carries(task: asyncio.Task[Any], test: object) -> bool:
        return False  # before 3.12 a task's contextvars context cannot be read


def _define_fixtures() -> bool:
    """Define one fixture per loop scope, running on that loop, if pytest-asyncio is here.

    pytest-asyncio fixes an async fixture's loop when it is defined, and ``aiocontext`` must
    run on the test's loop, whichever it is: it requests the one for the test's loop scope.
    Nothing is defined, and ``False`` returned, without pytest-asyncio 1.0 or newer (which
    passes the contextvars async fixtures set on to the test): so a missing or old
    pytest-asyncio never breaks a test run, only a request for ``aiocontext``.
    """
    # Both returns below run only without a suitable pytest-asyncio: TestWithoutPytestAsyncio
    # runs them in subprocesses, which coverage does not measure.
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - see above
        return False
    if _release(pytest_asyncio.__version__) < _MIN_PYTEST_ASYNCIO:  # pragma: no cover
        return False
    for loop_scope in _LOOP_SCOPES:
        globals()[_fixture_name(loop_scope)] = pytest_asyncio.fixture(
            _isolate_on(loop_scope), loop_scope=loop_scope, name=_fixture_name(loop_scope)
        )
    return True


def _release(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a version string: ``"1.5.0"`` -> ``(1, 5)``."""
    return tuple(int(number) for number in re.findall(r"\d+", version)[:2])


def _isolate_on(loop_scope: _LoopScope) -> Any:
    async def isolate(
        request: pytest.FixtureRequest, aiocontext_contexts: object
    ) -> AsyncIterator[tuple[Context[Any, Any], ...]]:
        """The ``aiocontext`` fixture's work, on the loop of this loop scope."""
        isolation = _Isolation(_checked(aiocontext_contexts), loop_scope, request.node.nodeid)
        # Finalizers run last-in first-out: this one, added before pytest-asyncio adds the
        # one that finishes this generator, runs after it, once the contextvars are reset.
        request.addfinalizer(isolation.report)
        with isolation.fresh_data() as test:
            yield isolation.contexts
            await isolation.check(test)

    return isolate


_HAS_FIXTURES: Final = _define_fixtures()
