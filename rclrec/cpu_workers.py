"""Worker threads that each run torch's CPU ops on one intra-op thread.

With several intra-op threads, torch splits every op between them and waits for all at the end
of each op. A loop of short ops over data that fits in one core's cache (the validation pass's
encoder and ranking pieces; the CE's row blocks behind its switch) can instead give each thread
its own share of the loop: ``run_one_thread_each`` runs one task
per worker thread, at the same time, each task's ops on that worker alone. torch releases the
GIL inside its ops, so the workers compute in parallel.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch

T = TypeVar("T")

_workers: list[ThreadPoolExecutor] = []
_lock = threading.Lock()
_this_thread = threading.local()


def _use_one_intra_op_thread() -> None:
    _this_thread.is_worker = True
    # torch gives a thread the process-wide thread count at its first parallel op; asking for
    # the count first makes that happen now, so the setting below is not overwritten later.
    torch.get_num_threads()
    torch.set_num_threads(1)


def _start_workers(count: int) -> list[ThreadPoolExecutor]:
    with _lock:
        if len(_workers) < count:
            # set_num_threads in a worker also sets the count that threads started later
            # inherit: put back the caller's once the new workers have taken theirs.
            callers = torch.get_num_threads()
            new = [ThreadPoolExecutor(1, thread_name_prefix="rclrec-cpu",
                                      initializer=_use_one_intra_op_thread)
                   for _ in range(count - len(_workers))]
            for worker in new:
                worker.submit(lambda: None).result()
            torch.set_num_threads(callers)
            _workers.extend(new)
        return _workers[:count]


def _forget_workers() -> None:
    """In a forked child the workers' threads do not exist (submitting would wait forever)."""
    global _lock
    _workers.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def run_one_thread_each(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run the tasks at the same time, each on its own worker thread whose torch ops use one
    intra-op thread; return their results in order (a task's exception is raised here).

    Each task runs under the caller's grad, inference and CPU autocast modes (thread-local in
    torch: inside an autograd Function's forward, say, grad mode is off, and a worker must not
    record ops). Called from a worker, the tasks run one after the other on it (its executor
    would wait on itself).
    """
    if getattr(_this_thread, "is_worker", False):
        return [task() for task in tasks]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def in_callers_modes(task: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            with (torch.inference_mode(inference), torch.set_grad_enabled(grad),
                  torch.autocast("cpu", dtype=autocast[1], enabled=autocast[0])):
                return task()
        return run

    workers = _start_workers(len(tasks))
    futures = [worker.submit(in_callers_modes(task))
               for worker, task in zip(workers, tasks, strict=True)]
    wait(futures)  # all, also when one fails: none is left writing into the caller's tensors
    return [future.result() for future in futures]
