"""The one signal catcher (lw-core's preemption and the executor build on it): a caught signal is recorded
and handed to `on_signal`, the previous handler comes back, and off the main thread it is inert."""

from __future__ import annotations

import os
import signal
import threading

from lw_registry.signals import SignalCatcher


def test_a_caught_signal_is_recorded_passed_on_and_the_previous_handler_restored():
    before = signal.getsignal(signal.SIGUSR1)
    seen: list[int] = []
    with SignalCatcher((signal.SIGUSR1,), seen.append) as caught:
        assert caught.received is None
        os.kill(os.getpid(), signal.SIGUSR1)
        assert caught.received == signal.SIGUSR1 and caught.received_at is not None
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_off_the_main_thread_it_sets_no_handler():
    before = signal.getsignal(signal.SIGUSR1)
    during = []

    def worker() -> None:
        with SignalCatcher((signal.SIGUSR1,)):
            during.append(signal.getsignal(signal.SIGUSR1))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert during == [before]
