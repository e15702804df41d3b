"""ACME's argument distribution rules (no cluster needed: distribution is pure)."""

from __future__ import annotations

import numpy as np
import pytest

from acme_core.arguments import distribute


def simple_func(x, y, z=3):
    return (x + y) * z


def medium_func(x, y, z=3, w=np.ones((3, 3))):
    return (sum(x) + y) * z * w


def hard_func(x, y, z=3, w=np.zeros((3, 1)), **kwargs):
    return sum(x) + y, z * w


def calls(dist):
    return list(dist.iter_arguments())


def test_lists_are_split_scalars_shared():
    dist = distribute(simple_func, ([2, 4, 6, 8], 4), {})
    assert dist.n_calls == 4
    assert calls(dist) == [([2, 4], {}), ([4, 4], {}), ([6, 4], {}), ([8, 4], {})]
    assert dist.shared.args == {1: 4}


def test_positional_given_by_name_is_moved_into_place():
    a = distribute(simple_func, ([2, 4, 6, 8],), {"y": 4})
    b = distribute(simple_func, (4,), {"x": [2, 4, 6, 8]})
    assert [c[0] for c in calls(a)] == [[2, 4], [4, 4], [6, 4], [8, 4]]
    assert [c[0] for c in calls(b)] == [[2, 4], [4, 4], [6, 4], [8, 4]]


def test_range_counts_as_list_and_kwargs_split():
    dist = distribute(simple_func, (range(3), 1), {"z": [10, 20, 30]})
    assert calls(dist) == [([0, 1], {"z": 10}), ([1, 1], {"z": 20}), ([2, 1], {"z": 30})]


def test_tuple_and_1d_array_are_split():
    dist = distribute(simple_func, ((1, 2), np.array([5.0, 6.0])), {})
    assert [c[0] for c in calls(dist)] == [[1, 5.0], [2, 6.0]]


def test_column_array_splits_along_first_axis():
    # (N, 1) squeezes to 1-D: each call gets a (1,) row, as in ACME
    dist = distribute(simple_func, (np.arange(3).reshape(3, 1), 0), {})
    first = calls(dist)[0][0][0]
    assert dist.n_calls == 3 and first.shape == (1,)


def test_row_array_is_shared_whole():
    row = np.arange(3).reshape(1, 3)
    dist = distribute(simple_func, (row, [1, 2, 3]), {}, n_inputs="auto")
    assert dist.n_calls == 3
    assert all(c[0][0] is row for c in calls(dist))


def test_list_of_other_length_is_shared_with_explicit_n_inputs():
    dist = distribute(simple_func, ([2, 2], [1, 2, 3, 4]), {}, n_inputs=4)
    assert all(c[0][0] == [2, 2] for c in calls(dist))


def test_n_inputs_with_scalars_only_repeats_the_call():
    dist = distribute(simple_func, (2, 3), {}, n_inputs=4)
    assert dist.n_calls == 4
    assert [simple_func(*a, **k) for a, k in calls(dist)] == [15, 15, 15, 15]


def test_n_inputs_with_array_argument():
    dist = distribute(hard_func, ([2, 4, 6, 8], 2), {"w": np.ones((8, 1))}, n_inputs=4)
    # w's default is an array, so w is always shared
    assert dist.n_calls == 4 and dist.shared.kwargs["w"].shape == (8, 1)


def test_kwarg_with_array_default_is_not_a_candidate():
    with pytest.raises(ValueError, match="No object has required length of 8 matching `n_inputs`"):
        distribute(hard_func, ([2, 4, 6, 8], [2, 2]), {"w": np.ones((8, 1))}, n_inputs=8)


def test_list_kwarg_with_array_default_is_counted():
    a, b = np.ones((3, 3)), np.zeros((3, 3))
    dist = distribute(medium_func, ([1, 2], 1), {"w": [a, b]})
    assert dist.n_calls == 2


def test_ambiguous_distribution_message():
    with pytest.raises(ValueError) as info:
        distribute(simple_func, ([2, 4, 6, 8], [2, 2]), {})
    assert str(info.value) == (
        "<ParallelMap> automatic input distribution failed: found 2 objects containing 2 to 4 "
        "elements. Please specify `n_inputs` manually. ")


def test_nothing_to_distribute_message():
    with pytest.raises(ValueError, match="found 0 objects containing 0 to 0 elements"):
        distribute(simple_func, (2, 3), {})


def test_n_inputs_mismatch_message():
    with pytest.raises(ValueError, match=r"No object has required length of 3 matching `n_inputs`"):
        distribute(simple_func, ([2, 4, 6, 8], 4), {}, n_inputs=3)


def test_positional_count_message():
    with pytest.raises(ValueError) as info:
        distribute(simple_func, ([1, 2],), {})
    assert str(info.value) == (
        "<ParallelMap> simple_func expects 2 positional arguments ('x', 'y'), found 1")


def test_keyword_count_message_names_unknown():
    with pytest.raises(ValueError) as info:
        distribute(simple_func, ([1, 2], 1), {"z": 1, "q": 2})
    msg = str(info.value)
    assert msg.startswith("<ParallelMap> simple_func accepts at maximum 1 keyword arguments ('z'), "
                          "found 2")
    assert "'q'" in msg


def test_var_kwargs_accept_any_keyword():
    dist = distribute(hard_func, ([[1], [2]], 1), {"extra": "hello"})
    assert calls(dist)[0][1] == {"extra": "hello"}


def test_not_callable():
    with pytest.raises(TypeError, match="<ParallelMap> first input has to be a callable function"):
        distribute("invalid", ([1],), {})


def test_task_id_is_passed_when_declared_and_user_value_overridden():
    def with_id(x, taskID=None):
        return taskID

    dist = distribute(with_id, ([5, 6, 7],), {"taskID": 99})
    assert dist.pass_task_id
    assert [k["taskID"] for _, k in calls(dist)] == [0, 1, 2]


def test_identical_calls_are_distinct_calls():
    dist = distribute(simple_func, ([1, 1, 1], 0), {})
    assert dist.n_calls == 3 and len(calls(dist)) == 3


def test_single_element_list_is_unpacked_for_one_call():
    dist = distribute(simple_func, ([7], 1), {})
    assert calls(dist) == [([7, 1], {})]


def test_callable_argument_warns(caplog):
    def g(x, fn):
        return fn(x)

    with caplog.at_level("WARNING", logger="acme"):
        distribute(g, ([1, 2], len), {})
    assert "Found a single callable object in positional arguments" in caplog.text


def test_large_argument_warns(caplog, monkeypatch):
    import acme_core.arguments as arguments

    monkeypatch.setattr(arguments, "MAX_ARG_SIZE_MB", 1)
    with caplog.at_level("WARNING", logger="acme"):
        distribute(simple_func, ([1, 2], np.zeros((600, 600))), {})
    assert "exceeds recommended limit of 1 MB" in caplog.text


def test_self_referencing_container_does_not_recurse_forever():
    d: dict = {}
    d["self"] = d
    dist = distribute(simple_func, ([1, 2], d), {})
    assert dist.shared.args[1] is d
