"""Tests for ``aiocontext.pytest``, the pytest plugin, run on small test suites by pytester.

Each test writes a suite into a temporary directory and runs pytest on it in this process
(so coverage sees the plugin's code), with the plugin loaded as users get it: through its
entry point.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
xfail_strict = true
pythonpath = .
{extra}
"""

NO_ASYNCIO_INI = """
[pytest]
filterwarnings = error
pythonpath = .
{extra}
"""

NEEDS_PYTEST_ASYNCIO = (
    "the aiocontext fixture runs on pytest-asyncio's event loops, and pytest-asyncio 1.0 or "
    "newer is not active: install it (pip install 'pytest-asyncio>=1.0') and do not disable "
    "it (-p no:asyncio)"
)

# The contexts the suites use, in a module of their own so that the ini option can name them.
CONTEXTS = """
from aiocontext import ChainMap, Context, Copy, DeepCopy, Share

shared = Context(Share(), name="shared")
copied = Context(Copy(), name="copied")
layered = Context(ChainMap(), name="layered")
deep = Context(DeepCopy(), name="deep")
ALL = (shared, copied, layered, deep)
not_a_context = {"a": "dict"}


class Holder:
    inner = shared
"""

# Every suite module starts with this.
HEADER = """
import asyncio
import sys

import pytest

import aiocontext
from contexts import ALL, copied, deep, layered, shared

leftovers = []  # keeps tasks a test leaves behind reachable, for the next test to inspect
"""

USE_ALL = """
@pytest.fixture
def aiocontext_contexts():
    return ALL
"""

UVLOOP_CONFTEST = """
import asyncio

import uvloop


def pytest_asyncio_loop_factories(config, item):
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
"""


def make_suite(
    pytester: pytest.Pytester, *bodies: str, ini: str = "", with_pytest_asyncio: bool = True
) -> None:
    """Write the ini file, the contexts module and ``test_suite.py`` (HEADER + ``bodies``).

    ``with_pytest_asyncio=False`` leaves out its options and ``import pytest_asyncio``.
    """
    if with_pytest_asyncio:
        pytester.makeini(INI.format(extra=ini))
        header = HEADER + "import pytest_asyncio\n"
    else:
        pytester.makeini(NO_ASYNCIO_INI.format(extra=ini))
        header = HEADER
    pytester.makepyfile(contexts=CONTEXTS)
    pytester.makepyfile(test_suite="\n".join([header, *map(textwrap.dedent, bodies)]))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest on the suite, in this process (without Hypothesis's plugin, which would
    import all of Hypothesis again in each run)."""
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


class TestAiocontext:
    """The ``aiocontext`` fixture: contexts on the test's loop, fresh data, leak checks."""

    def test_attaches_the_contexts_to_the_test_loop_whatever_its_scope(
        self, pytester: pytest.Pytester
    ) -> None:
        """With every loop scope, the test's own loop has the contexts, and children inherit."""
        make_suite(
            pytester,
            USE_ALL,
            """
            def make(loop_scope):
                @pytest.mark.asyncio(loop_scope=loop_scope)
                async def test(aiocontext):
                    assert ALL == aiocontext
                    assert all(ctx.is_attached() for ctx in ALL)
                    for ctx in ALL:
                        ctx["scope"] = loop_scope

                    async def child():
                        return [ctx["scope"] for ctx in ALL]

                    assert [loop_scope] * 4 == await asyncio.create_task(child())

                return test


            test_function = make("function")
            test_class = make("class")
            test_module = make("module")
            test_package = make("package")
            test_session = make("session")
            """,
        )
        run(pytester).assert_outcomes(passed=5)

    def test_attaches_the_contexts_to_uvloop_loops(self, pytester: pytest.Pytester) -> None:
        """On uvloop as on the stdlib loop (pytest-asyncio's loop factories hook)."""
        make_suite(
            pytester,
            USE_ALL,
            """
            @pytest.mark.asyncio
            async def test_function(aiocontext):
                copied["a"] = 1
                assert 1 == await asyncio.create_task(asyncio.sleep(0, copied["a"]))


            @pytest.mark.asyncio(loop_scope="module")
            async def test_module(aiocontext):
                shared["a"] = 1
                assert 1 == await asyncio.create_task(asyncio.sleep(0, shared["a"]))
            """,
        )
        pytester.makeconftest(UVLOOP_CONFTEST)
        result = run(pytester, "-v")
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["*test_function?uvloop? PASSED*"])

    def test_each_test_starts_with_fresh_data(self, pytester: pytest.Pytester) -> None:
        """On a loop shared by tests, what one test writes, the next does not see."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            async def test_writes(aiocontext):
                assert [{}, {}, {}, {}] == [dict(ctx) for ctx in ALL]
                for ctx in ALL:
                    ctx["written"] = "by test_writes"


            async def test_reads(aiocontext):
                assert [{}, {}, {}, {}] == [dict(ctx) for ctx in ALL]
            """,
        )
        run(pytester).assert_outcomes(passed=2)

    def test_discards_data_that_wider_scoped_fixtures_set(self, pytester: pytest.Pytester) -> None:
        """Without the fixture, tests under Share() share a module fixture's mapping; with
        it, each test starts empty."""
        make_suite(
            pytester,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            @pytest_asyncio.fixture(loop_scope="module", scope="module")
            async def seeded():
                shared.attach()
                shared["seed"] = "module"
                yield


            async def test_without_writes(seeded):
                shared["written"] = "by test_without_writes"


            async def test_without_sees_the_previous_write(seeded):
                assert "by test_without_writes" == shared["written"]


            @pytest.fixture
            def aiocontext_contexts():
                return (shared,)


            async def test_with(seeded, aiocontext):
                assert {} == dict(shared)
            """,
        )
        run(pytester).assert_outcomes(passed=3)

    def test_function_fixtures_that_request_it_seed_the_test_data(
        self, pytester: pytest.Pytester
    ) -> None:
        """What a function-scoped fixture requesting ``aiocontext`` writes, the test sees."""
        make_suite(
            pytester,
            USE_ALL,
            """
            @pytest_asyncio.fixture
            async def user(aiocontext):
                for ctx in ALL:
                    ctx["user"] = "alice"


            @pytest.fixture
            def tenant(user):
                # A synchronous fixture runs outside the loop: restore() seeds there.
                with copied.restore({**copied, "tenant": "acme"}):
                    yield


            @pytest.mark.asyncio
            async def test_seeded(tenant):
                assert ["alice"] * 4 == [ctx["user"] for ctx in ALL]
                assert "acme" == copied["tenant"]

            """,
        )
        run(pytester).assert_outcomes(passed=1)

    def test_detaches_the_contexts_it_attached(self, pytester: pytest.Pytester) -> None:
        """A later test on the same loop that does not use the fixture finds them detached."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            async def test_with(aiocontext):
                assert all(ctx.is_attached() for ctx in ALL)


            async def test_after():
                assert not any(ctx.is_attached() for ctx in ALL)
            """,
        )
        run(pytester).assert_outcomes(passed=2)

    def test_keeps_contexts_that_were_attached_before(self, pytester: pytest.Pytester) -> None:
        """Contexts a loop factory attached stay attached after the test."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            async def test_with(aiocontext):
                shared["a"] = 1


            async def test_after():
                assert all(ctx.is_attached() for ctx in ALL)
                assert {} == dict(shared)  # and the fresh data went with the test
            """,
        )
        pytester.makeconftest(
            """
            import aiocontext
            from contexts import ALL


            def pytest_asyncio_loop_factories(config, item):
                return {"asyncio": aiocontext.loop_factory(*ALL)}
            """
        )
        run(pytester).assert_outcomes(passed=2)

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="needs Task.get_context(), 3.12+")
    def test_fails_the_test_that_leaves_tasks_running_with_its_data(
        self, pytester: pytest.Pytester
    ) -> None:
        """On a loop that outlives the test, a task left running with the test's data fails
        the test at teardown, with a message naming the task and the fix; it is cancelled.
        On the stdlib loop and on uvloop."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            async def test_leaks(aiocontext):
                shared["user"] = "alice"

                async def linger():
                    await asyncio.sleep(3600)

                leftovers.append(asyncio.create_task(linger(), name="lingering"))


            async def test_next():
                assert leftovers[-1].cancelled()
            """,
        )
        pytester.makeconftest(UVLOOP_CONFTEST)
        result = run(pytester)
        result.assert_outcomes(passed=4, errors=2)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_leaks?asyncio?*",
                (
                    "test_suite.py::test_leaks?asyncio? left 1 task(s) running with its "
                    "aiocontext data on a module-scoped event loop, which outlives the test: "
                    "they would go on running during the tests that follow."
                ),
                "    <Task pending name='lingering' coro=<*linger()*",
                (
                    "They have been cancelled. Await every task a test starts before it returns "
                    "(asyncio.TaskGroup does), or cancel and await them in the teardown of the "
                    "fixture that starts them."
                ),
                "*ERROR at teardown of test_leaks?uvloop?*",
            ]
        )

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="needs Task.get_context(), 3.12+")
    def test_fails_the_test_whose_fixture_leaves_tasks_running(
        self, pytester: pytest.Pytester
    ) -> None:
        """A function-scoped fixture set up after ``aiocontext`` works for the test: tasks it
        leaves running carry the test's data, and fail the test too."""
        make_suite(
            pytester,
            USE_ALL,
            """
            @pytest_asyncio.fixture(loop_scope="session")
            async def worker(aiocontext):
                leftovers.append(asyncio.create_task(asyncio.Event().wait(), name="worker"))
                yield


            @pytest.mark.asyncio(loop_scope="session")
            async def test_uses_worker(worker):
                pass
            """,
        )
        result = run(pytester)
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["*session-scoped event loop*", "*name='worker'*"])

    @pytest.mark.skipif(sys.version_info >= (3, 12), reason="the check runs on 3.12+")
    def test_skips_the_leak_check_before_python_312(self, pytester: pytest.Pytester) -> None:
        """Python 3.11 cannot read a task's contextvars: nothing is flagged or cancelled."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            async def test_leaks(aiocontext):
                leftovers.append(asyncio.create_task(asyncio.sleep(3600)))


            async def test_next():
                assert not leftovers[0].done()
                leftovers[0].cancel()
            """,
        )
        run(pytester).assert_outcomes(passed=2)

    def test_leaves_tasks_the_test_did_not_start_alone(self, pytester: pytest.Pytester) -> None:
        """Tasks of a server a module fixture started, spawned while the test talks to it and
        still running at its end, are not the test's: no error, and they keep running."""
        make_suite(
            pytester,
            USE_ALL,
            """
            pytestmark = pytest.mark.asyncio(loop_scope="module")


            @pytest_asyncio.fixture(loop_scope="module", scope="module")
            async def server():
                async def handle(reader, writer):
                    await reader.read()  # until the client closes the connection
                    writer.close()

                server = await asyncio.start_server(handle, "127.0.0.1", 0)
                yield server.sockets[0].getsockname()[:2]
                server.close()
                await server.wait_closed()


            async def test_connects(server, aiocontext):
                reader, writer = await asyncio.open_connection(*server)
                leftovers.append(writer)
                await asyncio.sleep(0.01)  # the server's handler task is running now


            async def test_handler_still_there(server):
                handlers = [
                    task for task in asyncio.all_tasks() if task.get_coro().__name__ == "handle"
                ]
                leftovers[0].close()  # the handler reads EOF and returns
                await leftovers[0].wait_closed()
                await asyncio.gather(*handlers)
                assert 1 == len(handlers)
            """,
        )
        run(pytester).assert_outcomes(passed=2)

    def test_ignores_tasks_that_finish_on_cancellation(self, pytester: pytest.Pytester) -> None:
        """A task the test cancelled without awaiting it is not a leak."""
        make_suite(
            pytester,
            USE_ALL,
            """
            @pytest.mark.asyncio(loop_scope="module")
            async def test_cancels(aiocontext):
                task = asyncio.create_task(asyncio.sleep(3600))
                await asyncio.sleep(0)
                task.cancel()
            """,
        )
        run(pytester).assert_outcomes(passed=1)

    def test_does_not_check_function_scoped_loops(self, pytester: pytest.Pytester) -> None:
        """A function-scoped loop ends with the test, cancelling what is left: no error."""
        make_suite(
            pytester,
            USE_ALL,
            """
            @pytest.mark.asyncio
            async def test_leaves_a_task(aiocontext):
                leftovers.append(asyncio.create_task(asyncio.sleep(3600)))


            def test_next():
                assert leftovers[0].cancelled()
            """,
        )
        run(pytester).assert_outcomes(passed=2)

    def test_rejects_synchronous_tests(self, pytester: pytest.Pytester) -> None:
        """A test pytest-asyncio does not run gets an error that says what to do."""
        make_suite(
            pytester,
            USE_ALL,
            """
            def test_sync(aiocontext):
                pass
            """,
        )
        result = run(pytester)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                (
                    "test_suite.py::test_sync requests the aiocontext fixture but is not an "
                    "asyncio test: make it an `async def` test marked @pytest.mark.asyncio (or set "
                    "asyncio_mode = auto). In a synchronous test, use `with ctx.restore({}):`"
                )
            ]
        )

    def test_works_in_auto_mode(self, pytester: pytest.Pytester) -> None:
        """In auto mode, unmarked async tests are asyncio tests too."""
        make_suite(
            pytester,
            USE_ALL,
            """
            async def test_auto(aiocontext):
                copied["a"] = 1
                assert 1 == await asyncio.create_task(asyncio.sleep(0, copied["a"]))
            """,
        )
        run(pytester, "-o", "asyncio_mode=auto").assert_outcomes(passed=1)

    def test_needs_pytest_asyncio(self, pytester: pytest.Pytester) -> None:
        """With pytest-asyncio disabled, the fixture says it needs it."""
        make_suite(
            pytester,
            USE_ALL,
            """
            def test_sync(aiocontext):
                pass
            """,
            with_pytest_asyncio=False,
        )
        result = run(pytester, "-p", "no:asyncio")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([NEEDS_PYTEST_ASYNCIO])


class TestAiocontextContexts:
    """Choosing the contexts: the ``aiocontext_contexts`` option, or the fixture overridden."""

    def test_the_option_names_the_contexts(self, pytester: pytest.Pytester) -> None:
        """``package.module:ATTRIBUTE`` names, dotted attributes included, in order."""
        make_suite(
            pytester,
            """
            @pytest.mark.asyncio
            async def test_contexts(aiocontext, aiocontext_contexts):
                assert (copied, shared, shared) == aiocontext == aiocontext_contexts
                assert copied.is_attached() and shared.is_attached()
            """,
            ini="aiocontext_contexts = contexts:copied contexts:shared contexts:Holder.inner",
        )
        run(pytester).assert_outcomes(passed=1)

    @pytest.mark.parametrize(
        ("option", "message"),
        [
            (
                "",
                (
                    "the aiocontext fixture has no contexts to attach: name them in your pytest "
                    "configuration (aiocontext_contexts = package.module:ATTRIBUTE ...), or "
                    "override the aiocontext_contexts fixture to return them, e.g. "
                    "`return (request,)`"
                ),
            ),
            (
                "aiocontext_contexts = contexts.shared",
                (
                    "aiocontext_contexts names 'contexts.shared': write package.module:ATTRIBUTE, "
                    "e.g. myapp.context:request"
                ),
            ),
            (
                "aiocontext_contexts = nowhere:shared",
                (
                    "aiocontext_contexts names 'nowhere:shared', but module 'nowhere' cannot be "
                    "imported (No module named 'nowhere'): check the module path, and that it is "
                    "importable from the tests (pythonpath setting)"
                ),
            ),
            (
                "aiocontext_contexts = contexts:Holder.missing",
                (
                    "aiocontext_contexts names 'contexts:Holder.missing', but 'contexts' has no "
                    "attribute 'Holder.missing': check the name after the colon"
                ),
            ),
            (
                "aiocontext_contexts = contexts:not_a_context",
                (
                    "aiocontext_contexts names 'contexts:not_a_context', which is dict "
                    "{'a': 'dict'}, not an aiocontext.Context"
                ),
            ),
        ],
        ids=["unset", "no-colon", "no-module", "no-attribute", "not-a-context"],
    )
    def test_a_wrong_option_says_how_to_fix_it(
        self, pytester: pytest.Pytester, option: str, message: str
    ) -> None:
        """A missing or wrong option fails the test with a message saying what to write."""
        make_suite(
            pytester,
            """
            @pytest.mark.asyncio
            async def test_contexts(aiocontext):
                pass
            """,
            ini=option,
        )
        result = run(pytester)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message.replace("[", "[[]")])

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (
                "shared",
                (
                    "*TypeError: the aiocontext_contexts fixture must return a sequence of "
                    "aiocontext.Context objects, such as `return (request,)`; it returned Context "
                    "Context(policy=Share(), name='shared')"
                ),
            ),
            (
                "'contexts:shared'",
                (
                    "*TypeError: the aiocontext_contexts fixture must return a sequence of "
                    "aiocontext.Context objects, such as `return (request,)`; it returned str "
                    "'contexts:shared'"
                ),
            ),
            (
                "42",
                "*it returned int 42",
            ),
            (
                "[shared, 'copied']",
                (
                    "*TypeError: the aiocontext_contexts fixture must return aiocontext.Context "
                    "objects; it returned str 'copied' among them"
                ),
            ),
        ],
        ids=["a-context", "a-string", "an-int", "a-string-inside"],
    )
    def test_an_override_must_return_contexts(
        self, pytester: pytest.Pytester, value: str, message: str
    ) -> None:
        """An override returning anything but a sequence of contexts gets a TypeError."""
        make_suite(
            pytester,
            f"""
            @pytest.fixture
            def aiocontext_contexts():
                return {value}


            @pytest.mark.asyncio
            async def test_contexts(aiocontext):
                pass
            """,
        )
        result = run(pytester)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message])

    def test_an_override_wins_over_the_option(self, pytester: pytest.Pytester) -> None:
        """Overrides work per module (and per class, conftest...), ahead of the option."""
        make_suite(
            pytester,
            """
            class TestOverridden:
                @pytest.fixture
                def aiocontext_contexts(self):
                    return [deep]

                @pytest.mark.asyncio
                async def test_contexts(self, aiocontext):
                    assert (deep,) == aiocontext


            @pytest.mark.asyncio
            async def test_from_the_option(aiocontext):
                assert (layered,) == aiocontext
            """,
            ini="aiocontext_contexts = contexts:layered",
        )
        run(pytester).assert_outcomes(passed=2)


class TestLoopFactoriesHook:
    """The alternative for whole suites: pytest-asyncio loop factories that attach."""

    def test_every_test_loop_has_the_contexts_from_the_start(
        self, pytester: pytest.Pytester
    ) -> None:
        """The test task has data from its first step, on both loops, fresh in each test."""
        make_suite(
            pytester,
            """
            @pytest.mark.asyncio
            async def test_first():
                assert shared.is_attached() and copied.is_attached()
                assert {} == dict(shared)
                shared["a"] = copied["a"] = 1

                async def child():
                    copied["a"] = 2
                    return shared["a"]

                assert 1 == await asyncio.create_task(child())
                assert 1 == copied["a"]


            @pytest.mark.asyncio
            async def test_second():
                assert {} == dict(shared)
            """,
        )
        pytester.makeconftest(
            """
            import uvloop

            import aiocontext
            from contexts import copied, shared


            def pytest_asyncio_loop_factories(config, item):
                return {
                    "asyncio": aiocontext.loop_factory(shared, copied),
                    "uvloop": aiocontext.loop_factory(
                        shared, copied, base=uvloop.new_event_loop
                    ),
                }
            """
        )
        run(pytester).assert_outcomes(passed=4)


class TestPlugin:
    """The plugin is loaded everywhere aiocontext is installed, and inert unless used."""

    SUITE = """
        @pytest.mark.asyncio(loop_scope="module")
        async def test_unattached():
            assert not shared.is_attached()
            with pytest.raises(aiocontext.TaskContextError):
                shared["a"]


        @pytest.mark.asyncio
        async def test_left_running():
            leftovers.append(asyncio.create_task(asyncio.sleep(3600)))


        @pytest.mark.asyncio(loop_scope="module")
        async def test_leaves_a_task_on_a_shared_loop():
            leftovers.append(asyncio.create_task(asyncio.sleep(3600)))


        def test_sync():
            with shared.restore({"a": 1}):
                assert 1 == shared["a"]
        """

    def test_is_loaded_through_its_entry_point(self, pytester: pytest.Pytester) -> None:
        """A plain pytest run has the plugin and its documented fixtures."""
        make_suite(pytester, self.SUITE)
        result = run(pytester, "--fixtures")
        result.stdout.fnmatch_lines(["*-- fixtures defined from aiocontext.pytest --*"])
        result.stdout.fnmatch_lines(
            [
                "aiocontext -- *",
                (
                    "    Attach the contexts to the test's loop, give the test fresh data, check "
                    "for leaks."
                ),
            ]
        )
        result.stdout.fnmatch_lines(
            [
                "aiocontext_contexts -- *",
                "    The contexts the ``aiocontext`` fixture attaches: override it to choose them.",
            ]
        )

    def test_changes_nothing_in_tests_that_do_not_use_it(self, pytester: pytest.Pytester) -> None:
        """The same suite has the same outcome with the plugin and without it."""
        make_suite(pytester, self.SUITE)
        run(pytester).assert_outcomes(passed=4)
        run(pytester, "-p", "no:aiocontext").assert_outcomes(passed=4)


class TestWithoutPytestAsyncio:
    """Where pytest-asyncio is not installed, or too old."""

    @pytest.mark.parametrize(
        "shadow",
        [
            "raise ImportError('pytest-asyncio is not installed')\n",
            "__version__ = '0.23.8'\n",
        ],
        ids=["missing", "too-old"],
    )
    def test_the_plugin_loads_and_the_fixture_says_what_is_missing(
        self, pytester: pytest.Pytester, shadow: str
    ) -> None:
        """pytest runs; only a request for the fixture fails, saying what to install.

        Runs in a subprocess, with a ``pytest_asyncio`` package of our own that shadows the
        real one (pytester's directory comes first on the subprocess's path).
        """
        make_suite(
            pytester,
            USE_ALL,
            """
            def test_sync(aiocontext):
                pass


            def test_other():
                pass
            """,
            with_pytest_asyncio=False,
        )
        pytester.mkpydir("pytest_asyncio").joinpath("__init__.py").write_text(shadow)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:asyncio"
        )
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines([NEEDS_PYTEST_ASYNCIO])
