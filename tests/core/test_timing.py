"""best_seconds: one untimed warm-up, then the shortest of the timed calls on the given clock."""

from adjoint_sampling.core.timing import best_seconds


def test_best_of_the_timed_calls_after_an_untimed_warm_up():
    durations = iter([100.0, 5.0, 2.0, 7.0])  # the warm-up's 100 must not count
    now = [0.0]
    calls = []

    def clock():
        return now[0]

    def fn():
        calls.append(1)
        now[0] += next(durations)

    assert best_seconds(fn, repeats=3, clock=clock) == 2.0
    assert len(calls) == 4
