"""Tests for ``aiocontext.logging``: context values on stdlib log records and structlog events."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import subprocess
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any, cast

import pytest
import structlog
from structlog.testing import CapturingLogger

from aiocontext import Context, ContextRegistry, Key
from aiocontext.executors import CleanThreadPoolExecutor
from aiocontext.logging import (
    DEFAULT,
    ContextFilter,
    FieldProvider,
    StructlogProcessor,
    structlog_processor,
)
from conftest import THREADS_INHERIT_CONTEXT

#: Named by ``"<this module>:CTX"`` strings in the tests of the string form of ``context``.
CTX: Context[str, Any] = Context(name="test_logging.CTX", registry=ContextRegistry())
NOT_A_CONTEXT = {"request_id": "a dict, not a Context"}
TENANT = Key[str]("tenant")
REGION = Key[str]("region", default="eu-west")


class Holder:
    """Lets ``"<module>:Holder.CTX"`` name a context through a class attribute."""

    CTX = CTX


class Records(logging.Handler):
    """A handler keeping every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def new_context() -> Context[Any, Any]:
    """A context of its own for one test, outside the default registry."""
    return Context(name="request", registry=ContextRegistry())


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of the test's own, not propagating, with its handlers removed afterwards."""
    log = logging.getLogger(f"test.aiocontext.logging.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)


def capture(log: logging.Logger, log_filter: logging.Filter) -> Records:
    """Attach a recording handler with ``log_filter`` to ``log``; return the handler."""
    records = Records()
    records.addFilter(log_filter)
    log.addHandler(records)
    return records


def fields(record: logging.LogRecord, *names: str) -> tuple[Any, ...]:
    """The record's attributes ``names`` (set by the filter, so unknown to type checkers)."""
    return tuple(record.__dict__[name] for name in names)


def values(records: Records, name: str = "request_id") -> list[object]:
    """The ``name`` attribute of each record kept, in order."""
    return [record.__dict__[name] for record in records.records]


class TestContextFilter:
    @pytest.mark.asyncio
    async def test_copies_the_current_tasks_value(self, logger: logging.Logger) -> None:
        """A record gets the ``request_id`` of the task that logs it."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "r-1"
        logger.info("hello")
        assert ["r-1"] == values(records)

    @pytest.mark.asyncio
    async def test_formatter_can_use_the_attribute(self, logger: logging.Logger) -> None:
        """A ``%(request_id)s`` format string renders the value."""
        ctx = new_context().attach()
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
        handler.addFilter(ContextFilter(ctx))
        logger.addHandler(handler)
        with ctx.bound(request_id="r-2"):
            logger.warning("inside")
        logger.warning("after")
        assert "[r-2] inside\n[-] after\n" == stream.getvalue()

    @pytest.mark.asyncio
    async def test_every_way_of_spawning_carries_the_value(self, logger: logging.Logger) -> None:
        """Records from create_task, gather, TaskGroup, to_thread and callbacks carry the
        value of the task that spawned them."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "r-3"

        async def log(message: str) -> None:
            logger.info(message)

        done = asyncio.Event()

        def callback() -> None:
            logger.info("callback")
            done.set()

        await asyncio.create_task(log("create_task"))
        await asyncio.gather(log("gather"))
        async with asyncio.TaskGroup() as group:
            group.create_task(log("task group"))
        await asyncio.to_thread(logger.info, "to_thread")
        asyncio.get_running_loop().call_soon(callback)
        await done.wait()
        assert ["r-3"] * 5 == values(records)

    @pytest.mark.asyncio
    async def test_concurrent_tasks_each_log_their_own_value(self, logger: logging.Logger) -> None:
        """50 interleaved tasks each log their own id, also from a thread."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))

        async def handle(n: int) -> None:
            ctx["request_id"] = f"r-{n}"
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info("%d", n)
            await asyncio.to_thread(logger.info, "%d", n)

        await asyncio.gather(*(handle(n) for n in range(50)))
        assert 200 == len(records.records)
        assert all(
            (f"r-{record.getMessage()}",) == fields(record, "request_id")
            for record in records.records
        )

    def test_outside_any_task_gives_the_default(self, logger: logging.Logger) -> None:
        """With no loop running, a record gets the default instead of raising."""
        records = capture(logger, ContextFilter(new_context()))
        logger.info("no loop")
        assert [DEFAULT] == values(records)

    @pytest.mark.asyncio
    async def test_loop_not_attached_gives_the_default(self, logger: logging.Logger) -> None:
        """On a loop the context is not attached to, a record gets the default."""
        records = capture(logger, ContextFilter(new_context()))
        logger.info("not attached")
        assert [DEFAULT] == values(records)

    @pytest.mark.asyncio
    async def test_detached_loop_gives_the_default(self, logger: logging.Logger) -> None:
        """A task created after ``detach`` has no data: its records get the default."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "r-4"
        ctx.detach()

        async def log() -> None:
            logger.info("after detach")

        await asyncio.create_task(log())
        assert [DEFAULT] == values(records)

    @pytest.mark.asyncio
    async def test_plain_thread_gives_the_default(self, logger: logging.Logger) -> None:
        """A ``threading.Thread`` gets the default, unless threads inherit context (3.14+,
        ``sys.flags.thread_inherit_context``): then it runs in a copy of its starter's
        contextvars and gets the task's value."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "r-5"
        thread = threading.Thread(target=logger.info, args=("plain thread",))
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert (["r-5"] if THREADS_INHERIT_CONTEXT else [DEFAULT]) == values(records)

    @pytest.mark.asyncio
    async def test_clean_pool_thread_gives_the_default(self, logger: logging.Logger) -> None:
        """A CleanThreadPoolExecutor worker, started by the task, gets the default on every
        setting of thread_inherit_context."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "r-6"
        with CleanThreadPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, logger.info, "pool thread")
        assert [DEFAULT] == values(records)

    @pytest.mark.asyncio
    async def test_missing_key_gives_the_default(self, logger: logging.Logger) -> None:
        """A task whose data lacks the key gets the default."""
        records = capture(logger, ContextFilter(new_context().attach(), default=None))
        logger.info("no key")
        assert [None] == values(records)

    @pytest.mark.asyncio
    async def test_several_fields_and_per_field_defaults(self, logger: logging.Logger) -> None:
        """Each field is copied; a mapping default gives per-field defaults, and fields it
        leaves out get ``"-"``."""
        ctx = new_context().attach()
        records = capture(
            logger,
            ContextFilter(ctx, ("request_id", "user", "tenant"), default={"user": "anonymous"}),
        )
        ctx["request_id"] = "r-6"
        logger.info("partial")
        record = records.records[0]
        assert ("r-6", "anonymous", "-") == fields(record, "request_id", "user", "tenant")

    def test_per_field_defaults_outside_any_task(self, logger: logging.Logger) -> None:
        """Without data, each field gets its own default."""
        records = capture(
            logger, ContextFilter(new_context(), ("request_id", "user"), default={"user": None})
        )
        logger.info("no loop")
        assert ("-", None) == fields(records.records[0], "request_id", "user")

    @pytest.mark.asyncio
    async def test_mapping_renames_fields(self, logger: logging.Logger) -> None:
        """A mapping of keys to attribute names logs each key under its name."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx, {"request_id": "rid", TENANT: "org"}))
        ctx["request_id"] = "r-7"
        ctx[TENANT] = "acme"
        logger.info("renamed")
        assert ("r-7", "acme") == fields(records.records[0], "rid", "org")

    @pytest.mark.asyncio
    async def test_key_objects_log_under_their_name(self, logger: logging.Logger) -> None:
        """A ``Key`` is logged under its ``.name``; one with a default gives that default,
        as ``ctx[key]`` does; one without gives the filter's default."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx, (TENANT, REGION)))
        logger.info("unset")
        ctx[TENANT] = "acme"
        ctx[REGION] = "us-east"
        logger.info("set")
        assert [("-", "eu-west"), ("acme", "us-east")] == [
            fields(record, "tenant", "region") for record in records.records
        ]

    @pytest.mark.asyncio
    async def test_key_default_factory_is_called_once_per_task(
        self, logger: logging.Logger
    ) -> None:
        """A ``Key`` with a default factory gives the value the task's code sees."""
        ctx = new_context().attach()
        calls = iter(range(100))
        counter = Key[int]("counter", default_factory=lambda: next(calls))
        records = capture(logger, ContextFilter(ctx, (counter,)))
        logger.info("first")
        logger.info("second")
        assert [0, 0, 0] == [*values(records, "counter"), ctx[counter]]

    @pytest.mark.asyncio
    async def test_keeps_attributes_the_record_has(self, logger: logging.Logger) -> None:
        """A value passed with ``extra=`` wins over the context's."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx))
        ctx["request_id"] = "from-context"
        logger.info("explicit", extra={"request_id": "from-extra"})
        assert ["from-extra"] == values(records)

    @pytest.mark.asyncio
    async def test_overwrite_replaces_attributes(self, logger: logging.Logger) -> None:
        """With ``overwrite=True`` the context's value replaces the record's."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx, overwrite=True))
        ctx["request_id"] = "from-context"
        logger.info("explicit", extra={"request_id": "from-extra"})
        assert ["from-context"] == values(records)

    def test_overwrite_applies_to_defaults(self) -> None:
        """Without data, the default keeps an attribute the record has, and
        ``overwrite=True`` replaces it."""
        kept = logging.makeLogRecord({"msg": "m", "request_id": "from-extra"})
        replaced = logging.makeLogRecord({"msg": "m", "request_id": "from-extra"})
        ContextFilter(new_context(), ("request_id", "user")).filter(kept)
        ContextFilter(new_context(), ("request_id", "user"), overwrite=True).filter(replaced)
        assert [("from-extra", "-"), ("-", "-")] == [
            fields(record, "request_id", "user") for record in (kept, replaced)
        ]

    def test_filter_always_keeps_the_record(self) -> None:
        """``filter`` returns True, whatever the record's logger name and ``name``."""
        record = logging.makeLogRecord({"name": "elsewhere", "msg": "m"})
        assert True is ContextFilter(new_context(), name="somewhere").filter(record)
        assert ("-",) == fields(record, "request_id")

    @pytest.mark.asyncio
    async def test_other_errors_propagate(self, logger: logging.Logger) -> None:
        """An exception that is not aiocontext's (here from a key's default factory) is not
        hidden: it propagates from the logging call, as from any filter."""

        def broken() -> str:
            raise ZeroDivisionError("bug in a default factory")

        ctx = new_context().attach()
        capture(logger, ContextFilter(ctx, (Key[str]("broken", default_factory=broken),)))
        with pytest.raises(ZeroDivisionError, match="bug in a default factory"):
            logger.info("boom")

    def test_context_property(self) -> None:
        """``.context`` is the context read."""
        ctx = new_context()
        assert ctx is ContextFilter(ctx).context

    def test_repr(self) -> None:
        """The repr shows the context, the fields and the options."""
        ctx = new_context()
        assert (
            f"ContextFilter({ctx!r}, fields={{'request_id': 'rid'}}, default=None, overwrite=True)"
        ) == repr(ContextFilter(ctx, {"request_id": "rid"}, default=None, overwrite=True))

    def test_is_a_logging_filter(self) -> None:
        """It is a ``logging.Filter`` whose ``name`` is the one given."""
        log_filter = ContextFilter(new_context(), name="app")
        assert (True, "app") == (isinstance(log_filter, logging.Filter), log_filter.name)


class TestContextFilterContextString:
    def test_module_attribute_string(self) -> None:
        """``"package.module:ATTRIBUTE"`` names a context, imported at construction."""
        assert CTX is ContextFilter(f"{__name__}:CTX").context

    def test_dotted_attribute_path(self) -> None:
        """The part after the colon may be a dotted path of attributes."""
        assert CTX is ContextFilter(f"{__name__}:Holder.CTX").context

    @pytest.mark.parametrize("spec", ["no_colon", ":CTX", "tests.test_logging:", ""])
    def test_malformed_string_raises_value_error(self, spec: str) -> None:
        """A string that is not ``module:attribute`` raises ValueError showing the form."""
        with pytest.raises(ValueError, match="package.module:ATTRIBUTE"):
            ContextFilter(spec)

    def test_missing_module_raises_import_error(self) -> None:
        """A module that cannot be imported raises ImportError naming it."""
        with pytest.raises(ImportError, match="cannot import module 'no_such_module_xyz'"):
            ContextFilter("no_such_module_xyz:CTX")

    def test_missing_attribute_raises_attribute_error(self) -> None:
        """A missing attribute raises AttributeError naming it."""
        with pytest.raises(AttributeError, match="no attribute 'MISSING'"):
            ContextFilter(f"{__name__}:MISSING")

    def test_not_a_context_raises_type_error(self) -> None:
        """A name that is not a Context raises TypeError."""
        with pytest.raises(TypeError, match="not an aiocontext.Context"):
            ContextFilter(f"{__name__}:NOT_A_CONTEXT")

    @pytest.mark.parametrize("context", [None, 42, {"request_id": "x"}])
    def test_neither_context_nor_string_raises_type_error(self, context: object) -> None:
        """Anything but a Context or a string raises TypeError."""
        with pytest.raises(TypeError, match="must be an aiocontext.Context or"):
            ContextFilter(context)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


class TestContextFilterFields:
    def test_single_key_raises_type_error(self) -> None:
        """A bare string is refused, with the tuple to write instead."""
        with pytest.raises(TypeError, match=r"write fields=\('request_id',\)"):
            ContextFilter(new_context(), "request_id")

    def test_single_key_object_raises_type_error(self) -> None:
        """A bare Key is refused too."""
        single: Any = TENANT
        with pytest.raises(TypeError, match="single key"):
            ContextFilter(new_context(), single)

    @pytest.mark.parametrize("fields", [42, None, 1.5])
    def test_not_a_collection_raises_type_error(self, fields: Any) -> None:
        """``fields`` must be a collection of keys or a mapping."""
        with pytest.raises(TypeError, match="collection of keys or a mapping"):
            ContextFilter(new_context(), fields)

    @pytest.mark.parametrize("fields", [(), {}, []])
    def test_no_fields_raises_value_error(self, fields: Any) -> None:
        """An empty collection of fields is refused."""
        with pytest.raises(ValueError, match="fields is empty"):
            ContextFilter(new_context(), fields)

    @pytest.mark.parametrize("key", [1, None, b"request_id"])
    def test_key_of_wrong_type_raises_type_error(self, key: Any) -> None:
        """Keys are strings or Key objects."""
        with pytest.raises(TypeError, match="a field's key must be a str or an aiocontext.Key"):
            ContextFilter(new_context(), (key,))
        with pytest.raises(TypeError, match="a field's key must be a str or an aiocontext.Key"):
            ContextFilter(new_context(), {key: "name"})

    def test_name_of_wrong_type_raises_type_error(self) -> None:
        """A mapping's values are attribute names: strings."""
        with pytest.raises(TypeError, match="must be a str"):
            ContextFilter(new_context(), {"request_id": 1})
        with pytest.raises(TypeError, match="must be a str"):
            ContextFilter(new_context(), {"request_id": None})

    def test_empty_name_raises_value_error(self) -> None:
        """An empty attribute name is refused."""
        with pytest.raises(ValueError, match="name is empty"):
            ContextFilter(new_context(), {"request_id": ""})

    @pytest.mark.parametrize("name", ["name", "msg", "message", "levelname", "asctime", "args"])
    def test_record_attribute_name_raises_value_error(self, name: str) -> None:
        """A name every LogRecord has would never be set: refused, with a fix."""
        with pytest.raises(ValueError, match=f"fields={{'{name}': 'ctx_{name}'}}"):
            ContextFilter(new_context(), (name,))

    def test_duplicate_names_raise_value_error(self) -> None:
        """Two keys logged under one name are refused."""
        with pytest.raises(ValueError, match="both named 'request_id'"):
            ContextFilter(new_context(), ("request_id", Key[str]("request_id")))

    def test_default_for_unknown_field_raises_value_error(self) -> None:
        """A per-field default for a name that is not a field is refused (a typo)."""
        with pytest.raises(ValueError, match=r"entries for \['usr'\]"):
            ContextFilter(new_context(), ("request_id", "user"), default={"usr": "-"})


class TestContextFilterDictConfig:
    @pytest.fixture
    def configured(self, request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
        """A logger name for the test, and a stream its handler writes to; the logger's
        handlers are removed afterwards."""
        name = f"test.aiocontext.dictconfig.{request.node.name}"
        yield name, io.StringIO()
        log = logging.getLogger(name)
        for handler in log.handlers[:]:
            log.removeHandler(handler)
            handler.close()

    @staticmethod
    def config(logger: str, context: str, **filter_options: Any) -> dict[str, Any]:
        """A dictConfig dict: one logger, one handler with a ContextFilter."""
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "request": {
                    "()": "aiocontext.logging.ContextFilter",
                    "context": context,
                    **filter_options,
                }
            },
            "formatters": {"line": {"format": "[%(request_id)s] %(message)s"}},
            "handlers": {
                "capture": {
                    "class": "logging.StreamHandler",
                    "filters": ["request"],
                    "formatter": "line",
                }
            },
            "loggers": {logger: {"handlers": ["capture"], "level": "INFO", "propagate": False}},
        }

    @pytest.mark.asyncio
    @pytest.mark.parametrize("context", [f"{__name__}:CTX", f"ext://{__name__}.CTX"])
    async def test_dict_config(self, configured: tuple[str, io.StringIO], context: str) -> None:
        """A ``'()': 'aiocontext.logging.ContextFilter'`` filter with a ``module:ATTRIBUTE``
        (or ``ext://``) context puts the id in every line the handler formats."""
        name, stream = configured
        logging.config.dictConfig(self.config(name, context))
        log = logging.getLogger(name)
        handler = log.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        cast("logging.StreamHandler[io.StringIO]", handler).setStream(stream)
        CTX.attach()
        try:
            with CTX.bound(request_id="r-dict"):
                log.info("in a task")
                await asyncio.to_thread(log.info, "in a thread")
            log.info("unbound")
        finally:
            CTX.detach()
        assert "[r-dict] in a task\n[r-dict] in a thread\n[-] unbound\n" == stream.getvalue()

    def test_dict_config_with_fields_and_defaults(
        self, configured: tuple[str, io.StringIO]
    ) -> None:
        """``fields`` and ``default`` are passed as JSON-like values."""
        name, stream = configured
        config = self.config(
            name,
            f"{__name__}:CTX",
            fields={"request_id": "request_id", "user": "user"},
            default={"request_id": "none"},
        )
        config["formatters"]["line"]["format"] = "[%(request_id)s %(user)s] %(message)s"
        logging.config.dictConfig(config)
        log = logging.getLogger(name)
        handler = log.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        cast("logging.StreamHandler[io.StringIO]", handler).setStream(stream)
        log.info("no loop")
        assert "[none -] no loop\n" == stream.getvalue()

    def test_dict_config_with_a_bad_context_fails_loudly(
        self, configured: tuple[str, io.StringIO]
    ) -> None:
        """A context string naming nothing fails ``dictConfig``, with the cause chained."""
        name, _ = configured
        with pytest.raises(ValueError, match="Unable to configure filter") as info:
            logging.config.dictConfig(self.config(name, f"{__name__}:NOPE"))
        assert isinstance(info.value.__cause__, AttributeError)


def capturing(processor: StructlogProcessor) -> tuple[Any, CapturingLogger]:
    """A structlog logger running ``processor``, and the logger capturing what it emits."""
    captured = CapturingLogger()
    log = structlog.wrap_logger(
        captured,
        processors=[processor],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return log, captured


def events(captured: CapturingLogger) -> list[dict[str, Any]]:
    """The event dicts the capturing logger received."""
    return [call.kwargs for call in captured.calls]


class TestStructlogProcessor:
    @pytest.mark.asyncio
    async def test_adds_the_current_tasks_value(self) -> None:
        """Each event gets the ``request_id`` of the task that logs it."""
        ctx = new_context().attach()
        log, captured = capturing(structlog_processor(ctx))
        ctx["request_id"] = "r-1"
        log.info("hello", user="ann")
        assert [{"event": "hello", "user": "ann", "request_id": "r-1"}] == events(captured)

    @pytest.mark.asyncio
    async def test_async_methods_see_the_callers_value(self) -> None:
        """``await log.ainfo(...)`` runs the chain in a thread with the caller's contextvars,
        so it sees the caller's value."""
        ctx = new_context().attach()
        log, captured = capturing(structlog_processor(ctx))

        async def handle(n: int) -> None:
            with ctx.bound(request_id=f"r-{n}"):
                await log.ainfo("request", n=n)

        await asyncio.gather(*(handle(n) for n in range(20)))
        assert all(f"r-{event['n']}" == event["request_id"] for event in events(captured))
        assert 20 == len(captured.calls)

    def test_outside_any_task_gives_the_default(self) -> None:
        """With no loop running the event gets the default."""
        log, captured = capturing(structlog_processor(new_context(), default=None))
        log.info("no loop")
        assert [{"event": "no loop", "request_id": None}] == events(captured)

    @pytest.mark.asyncio
    async def test_keeps_bound_values(self) -> None:
        """A value bound on the logger (or passed to the call) wins over the context's."""
        ctx = new_context().attach()
        log, captured = capturing(structlog_processor(ctx))
        ctx["request_id"] = "from-context"
        log.bind(request_id="from-bind").info("bound")
        log.info("passed", request_id="from-call")
        assert ["from-bind", "from-call"] == [event["request_id"] for event in events(captured)]

    @pytest.mark.asyncio
    async def test_overwrite_replaces_bound_values(self) -> None:
        """With ``overwrite=True`` the context's value wins."""
        ctx = new_context().attach()
        log, captured = capturing(structlog_processor(ctx, overwrite=True))
        ctx["request_id"] = "from-context"
        log.bind(request_id="from-bind").info("bound")
        assert "from-context" == events(captured)[0]["request_id"]

    @pytest.mark.asyncio
    async def test_fields_mapping_and_keys(self) -> None:
        """Keys map to event-dict names; a Key's own default applies."""
        ctx = new_context().attach()
        processor = structlog_processor(
            ctx, {"request_id": "rid", TENANT: "tenant", REGION: "region"}, default="?"
        )
        log, captured = capturing(processor)
        ctx["request_id"] = "r-2"
        log.info("mapped")
        assert {"event": "mapped", "rid": "r-2", "tenant": "?", "region": "eu-west"} == (
            events(captured)[0]
        )

    def test_record_attribute_names_are_allowed(self) -> None:
        """Names reserved on LogRecords are ordinary keys in an event dict."""
        processor = structlog_processor(new_context(), ("name",), default="anon")
        assert {"event": "e", "name": "anon"} == processor(None, "info", {"event": "e"})

    def test_is_a_plain_callable_returning_the_event_dict(self) -> None:
        """The processor protocol: ``(logger, method_name, event_dict) -> event_dict``."""
        processor = structlog_processor(new_context())
        event: MutableMapping[str, Any] = {"event": "e"}
        assert event is processor(object(), "info", event)

    def test_context_string_and_repr(self) -> None:
        """A ``module:ATTRIBUTE`` string names the context; the repr shows the options."""
        processor = structlog_processor(f"{__name__}:CTX")
        assert CTX is processor.context
        assert (
            f"StructlogProcessor({CTX!r}, fields={{'request_id': 'request_id'}}, "
            "default='-', overwrite=False)"
        ) == repr(processor)

    def test_class_takes_the_same_arguments(self) -> None:
        """``StructlogProcessor(...)`` is what ``structlog_processor(...)`` returns."""
        ctx = new_context()
        assert repr(StructlogProcessor(ctx, ("user",), default=None)) == repr(
            structlog_processor(ctx, ("user",), default=None)
        )

    def test_bad_arguments_raise(self) -> None:
        """The arguments are checked as for ContextFilter."""
        with pytest.raises(TypeError, match="single key"):
            structlog_processor(new_context(), "request_id")
        with pytest.raises(ValueError, match="fields is empty"):
            structlog_processor(new_context(), ())


class Counter(FieldProvider):
    """A provider of two fields: a call count, and ``parity`` only on even calls."""

    def __init__(self, names: Any = ("calls", "parity")) -> None:
        self._names = names
        self.calls = 0

    def __repr__(self) -> str:
        return "Counter()"

    @property
    def names(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", self._names)

    def values(self) -> dict[str, object]:
        self.calls += 1
        return {"calls": self.calls, **({"parity": "even"} if self.calls % 2 == 0 else {})}


class TestFieldProvider:
    @pytest.mark.asyncio
    async def test_fills_its_fields_after_the_contexts(self, logger: logging.Logger) -> None:
        """Each record gets the provider's values, called in the emitting code; a name it
        leaves out gets the default."""
        ctx = new_context().attach()
        records = capture(logger, ContextFilter(ctx, providers=[Counter()]))
        ctx["request_id"] = "r-1"
        logger.info("one")
        logger.info("two")
        got = [fields(record, "request_id", "calls", "parity") for record in records.records]
        assert [("r-1", 1, "-"), ("r-1", 2, "even")] == got

    def test_fills_its_fields_where_the_context_has_no_data(self, logger: logging.Logger) -> None:
        """Outside any task the context's fields get their defaults, the provider's its
        values: a provider does not depend on the context."""
        records = capture(logger, ContextFilter(new_context(), providers=[Counter()]))
        logger.info("no loop")
        assert [("-", 1, "-")] == [
            fields(r, "request_id", "calls", "parity") for r in records.records
        ]

    def test_per_field_defaults_and_overwrite(self, logger: logging.Logger) -> None:
        """Per-field defaults name provider fields too; ``extra=`` wins unless overwrite."""
        kept = capture(
            logger, ContextFilter(new_context(), default={"parity": "odd"}, providers=[Counter()])
        )
        logger.info("kept", extra={"calls": "mine"})
        assert [("mine", "odd")] == [fields(r, "calls", "parity") for r in kept.records]
        logger.removeHandler(kept)
        replaced = capture(
            logger, ContextFilter(new_context(), overwrite=True, providers=[Counter()])
        )
        logger.info("replaced", extra={"calls": "mine"})
        assert [1] == values(replaced, "calls")

    def test_structlog_processor_takes_providers(self) -> None:
        """The structlog processor fills provider fields into the event dict."""
        processor = structlog_processor(new_context(), providers=[Counter()])
        event = processor(None, "info", {"event": "e"})
        assert {"event": "e", "request_id": "-", "calls": 1, "parity": "-"} == event
        assert repr(processor).endswith(", providers=[Counter()])")

    @pytest.mark.parametrize(
        ("providers", "message"),
        [
            (Counter(), "must be a list of FieldProvider"),
            (None, "must be a list of FieldProvider"),
            ([object()], "must hold FieldProvider objects"),
            ([Counter(names="calls")], "must be a tuple of field names"),
        ],
        ids=["a provider, not a list", "None", "an object in the list", "names not a tuple"],
    )
    def test_bad_providers_raise_type_error(self, providers: Any, message: str) -> None:
        """Providers are checked when the filter is made."""
        with pytest.raises(TypeError, match=message):
            ContextFilter(new_context(), providers=providers)

    @pytest.mark.parametrize(
        ("names", "message"),
        [
            (("request_id",), "two fields are both named 'request_id'"),
            (("calls", "calls"), "two fields are both named 'calls'"),
            (("msg",), "'msg' is an attribute every LogRecord already has"),
            (("",), "empty or not a str"),
            ((1,), "empty or not a str"),
        ],
        ids=repr,
    )
    def test_bad_names_raise_value_error(self, names: Any, message: str) -> None:
        """A provider's names must be unique among all fields and usable on a record."""
        with pytest.raises(ValueError, match=message):
            ContextFilter(new_context(), providers=[Counter(names)])

    def test_a_default_for_no_field_is_refused(self) -> None:
        """A per-field default must name a context field or a provider field."""
        with pytest.raises(ValueError, match="default has entries for \\['nope'\\]"):
            ContextFilter(new_context(), default={"nope": 1}, providers=[Counter()])


class TestImports:
    def test_core_imports_no_integration(self) -> None:
        """``import aiocontext`` imports neither the integrations nor structlog, aiohttp,
        grpc, Django or asgiref, and ``aiocontext.logging`` does not import structlog."""
        code = (
            "import sys, aiocontext\n"
            "loaded = {'aiocontext.logging', 'aiocontext.aiohttp', 'aiocontext.grpc',\n"
            "          'structlog', 'aiohttp', 'grpc', 'django', 'asgiref'}\n"
            "assert not loaded & set(sys.modules), loaded & set(sys.modules)\n"
            "import aiocontext.logging\n"
            "assert 'structlog' not in sys.modules\n"
            "print('ok')\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert ("ok\n", 0) == (result.stdout, result.returncode), result.stderr
