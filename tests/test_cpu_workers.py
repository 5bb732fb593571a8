"""Worker threads with one intra-op thread each."""

import multiprocessing
import threading

import pytest
import torch

from rclrec import cpu_workers
from rclrec.cpu_workers import run_one_thread_each


@pytest.fixture
def no_workers_yet():
    """Workers that earlier tests started would make the start-up code of this test idle."""
    for worker in cpu_workers._workers:
        worker.shutdown(wait=True)
    cpu_workers._forget_workers()
    yield


def test_tasks_run_at_once_on_their_own_threads_with_one_intra_op_thread(no_workers_yet):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        both_started = threading.Barrier(3, timeout=10)  # waits forever if they ran in turn

        def task(k):
            both_started.wait()
            return k, threading.get_ident(), torch.get_num_threads()

        results = run_one_thread_each([lambda k=k: task(k) for k in range(3)])
        assert [k for k, _, _ in results] == [0, 1, 2]
        assert len({ident for _, ident, _ in results}) == 3
        assert threading.get_ident() not in {ident for _, ident, _ in results}
        assert all(count == 1 for _, _, count in results)
        assert torch.get_num_threads() == 2  # the caller's setting is left as it was
        # Threads started later still get the caller's count, not the workers'.
        later = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2]
    finally:
        torch.set_num_threads(before)


def test_a_failing_task_raises_in_the_caller_after_the_others_finish():
    finished = []

    def slow():
        threading.Event().wait(0.2)
        finished.append(True)

    def fail():
        raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        run_one_thread_each([fail, slow])
    assert finished == [True]


def _child_sum(queue):
    queue.put(sum(run_one_thread_each([lambda: 1, lambda: 2])))


def test_a_forked_child_starts_its_own_workers():
    run_one_thread_each([lambda: None, lambda: None])  # workers exist before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_sum, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=1) == 3


def test_tasks_run_under_the_callers_grad_and_inference_modes():
    def modes():
        return torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    assert run_one_thread_each([modes, modes]) == [(True, False)] * 2
    with torch.no_grad():
        assert run_one_thread_each([modes, modes]) == [(False, False)] * 2
    with torch.inference_mode():
        assert run_one_thread_each([modes, modes]) == [(False, True)] * 2
        # A tensor made in inference mode can be written by a worker.
        made_here = torch.zeros(2)
        run_one_thread_each([lambda: made_here[0].fill_(1), lambda: made_here[1].fill_(2)])
        assert made_here.tolist() == [1.0, 2.0]


def test_tasks_run_under_the_callers_cpu_autocast():
    def product_dtype():
        return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype

    assert run_one_thread_each([product_dtype, product_dtype]) == [torch.float32] * 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert run_one_thread_each([product_dtype, product_dtype]) == [torch.bfloat16] * 2


def test_a_call_from_a_worker_runs_its_tasks_there_instead_of_waiting_on_itself():
    def nested():
        return run_one_thread_each([threading.get_ident, threading.get_ident])

    inner = run_one_thread_each([nested, nested])  # would never return if it queued
    assert [len(set(idents)) for idents in inner] == [1, 1]
    assert inner[0][0] != inner[1][0]
