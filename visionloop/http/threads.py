"""How the server runs blocking work beside its event loop. Light to import: the feedback
benchmark's bare endpoint runs its work the same way (bench/feedback.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

# The event loop and the worker threads running routes share the GIL. With Python's default switch
# interval the loop (wanting to answer a request a thread just finished) can wait a whole interval
# behind a busy thread; a tenth of it made bench/feedback answer more requests (docs/benchmarks.md).
GIL_SWITCH_SECONDS = 0.0005

# Feedback is recorded on a pool of this many threads of its own. Group commit keeps the database
# busy with a few; on anyio's default pool, with many concurrent clients, the threads contending for
# the GIL cost more CPU per request (docs/benchmarks.md), and fewer threads wait on the connection pool.
FEEDBACK_THREADS = 8


def feedback_pool() -> ThreadPoolExecutor:
    """The feedback endpoints' threads. A plain executor rather than anyio.to_thread: anyio's hop
    adds a checkpoint (one more turn of the event loop), a cancel scope and a capacity limiter,
    and with many clients the plain hop answered more requests/s (docs/benchmarks.md).
    A request whose task is cancelled while its feedback is being recorded is not answered, but
    the recording runs to its end: committed, or not at all."""
    return ThreadPoolExecutor(FEEDBACK_THREADS, thread_name_prefix="feedback")
