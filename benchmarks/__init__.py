"""aiocontext's benchmark suite: ratios against bare asyncio and aiotask-context.

Run it from the repository root with ``python -m benchmarks`` (``--help`` for the options);
``benchmarks/README.md`` says how to read the table.
"""
