"""Run the statistics jobs off the training thread, and hand their results back in order.

The engine spends its time in numpy and in the compiled kernel, which release the GIL, so one
background thread computes a step's statistics while the training thread goes on. Results are
taken back on the caller's thread only (:meth:`StatisticsWorker.take`), in submission order,
so loggers are only ever called from the training thread and steps reach them in order. An
exception in a job comes back with it from :meth:`take`, for the caller to raise.

Results that live on a GPU (jobs run at submission, their kernels queued on the current
stream) are copied to the host without blocking and count as finished when a CUDA event
recorded after the copy has completed: no synchronisation until they are taken.
"""
from __future__ import annotations

import collections
import queue
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import torch

__all__ = ["StatisticsWorker"]

_STOP = object()


def _to_host(output: Any) -> Any:
    """Tensors of ``output`` (nested tuples/lists) on the CPU (non-blocking from a GPU)."""
    if isinstance(output, torch.Tensor):
        return output.to("cpu", non_blocking=True) if output.device.type != "cpu" else output
    if isinstance(output, (list, tuple)):
        return type(output)(_to_host(o) for o in output)
    return output


def _on_gpu(output: Any) -> bool:
    if isinstance(output, torch.Tensor):
        return output.device.type == "cuda"
    return isinstance(output, (list, tuple)) and any(_on_gpu(o) for o in output)


class StatisticsWorker:
    """Jobs ``fn(*args)`` computed in submission order, in a background thread (``threaded``)
    or at submission (``threaded=False``, and always for ``inline=True`` submissions).

    State: the FIFO of tickets not yet taken, their outputs or errors, the thread.
    """

    def __init__(self, threaded: bool = True) -> None:
        self.threaded = bool(threaded)
        self._order: Deque[int] = collections.deque()  # tickets not yet taken, in order
        self._done: Dict[int, Tuple[Optional[BaseException], Any]] = {}
        self._events: Dict[int, Any] = {}  # ticket -> CUDA event of a GPU result
        self._next = 0
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._finished = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def __len__(self) -> int:
        """Jobs submitted and not yet taken."""
        return len(self._order)

    def submit(self, fn: Callable[..., Any], *args: Any, inline: bool = False) -> int:
        """Queue ``fn(*args)``; returns its ticket."""
        ticket, self._next = self._next, self._next + 1
        self._order.append(ticket)
        if self.threaded and not inline:
            self._start()
            self._queue.put((ticket, fn, args))
            return ticket
        try:
            output = fn(*args)
        except Exception as error:  # raised at take(), as a threaded job's
            self._finish(ticket, error, None)
            return ticket
        if _on_gpu(output):
            event = torch.cuda.Event()
            output = _to_host(output)
            event.record()
            self._events[ticket] = event
        self._finish(ticket, None, output)
        return ticket

    def _taken(self, ticket: int) -> bool:
        """Whether ticket's output was taken already (tickets are taken in order)."""
        return ticket < (self._order[0] if self._order else self._next)

    def ready(self, ticket: int) -> bool:
        """Whether ticket's job has finished (its output is on the host, or taken)."""
        if self._taken(ticket):
            return True
        with self._finished:
            if ticket not in self._done:
                return False
        event = self._events.get(ticket)
        return event is None or event.query()

    def wait(self, ticket: int) -> None:
        """Block until ticket's job has finished (does not raise its error)."""
        if not self._taken(ticket):
            self._wait_done(ticket)

    def _wait_done(self, ticket: int) -> None:
        with self._finished:
            self._finished.wait_for(lambda: ticket in self._done)
        event = self._events.get(ticket)
        if event is not None:
            event.synchronize()

    def take(self, block: bool) -> List[Tuple[Optional[BaseException], Any]]:
        """(error, output) of the finished jobs at the front of the order (every job with
        ``block``), oldest first, up to and including the first job that raised (error set,
        output None; later jobs stay queued)."""
        out: List[Tuple[Optional[BaseException], Any]] = []
        while self._order and (block or self.ready(self._order[0])):
            ticket = self._order[0]
            self._wait_done(ticket)
            self._order.popleft()
            self._events.pop(ticket, None)
            with self._finished:
                out.append(self._done.pop(ticket))
            if out[-1][0] is not None:
                break
        return out

    def close(self) -> None:
        """Stop the thread after the queued jobs (their outputs stay takeable)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gradient-statistics",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            ticket, fn, args = item
            try:
                output, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                output, error = None, exc
            self._finish(ticket, error, output)

    def _finish(self, ticket: int, error: Optional[BaseException], output: Any) -> None:
        with self._finished:
            self._done[ticket] = (error, output)
            self._finished.notify_all()
