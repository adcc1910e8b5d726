"""Large-file part plans: copy what is unchanged, upload the rest, every part big enough."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from b2fs.writeback.upload import MAX_COPY_PART, plan_parts

MB = 1_000_000


def check(plan, size, clean, part_size, min_part):
    assert plan[0].start == 0 and plan[-1].end == size
    for a, b in zip(plan, plan[1:], strict=False):
        assert a.end == b.start
    for p in plan[:-1]:
        assert p.size >= min_part
    for p in plan:
        assert p.size > 0
        if p.copy:
            assert any(a <= p.start and p.end <= b for a, b in clean), p
            assert p.size <= MAX_COPY_PART
        else:
            assert p.size < part_size + min_part


def test_append_copies_the_old_file_and_uploads_the_new_tail():
    size = 5000 * MB
    plan = plan_parts(size + 10 * MB, [(0, size)], 100 * MB, 5 * MB)
    uploaded = sum(p.size for p in plan if not p.copy)
    assert uploaded == 10 * MB
    check(plan, size + 10 * MB, [(0, size)], 100 * MB, 5 * MB)


def test_a_small_change_in_the_middle_borrows_from_its_neighbour():
    size = 50 * MB
    clean = [(0, 20 * MB), (21 * MB, size)]
    plan = plan_parts(size, clean, 10 * MB, 5 * MB)
    check(plan, size, clean, 10 * MB, 5 * MB)
    uploaded = sum(p.size for p in plan if not p.copy)
    assert 1 * MB <= uploaded <= 5 * MB + 1 * MB


def test_nothing_clean_uploads_everything_in_part_size_pieces():
    plan = plan_parts(25 * MB, [], 10 * MB, 5 * MB)
    assert [p.size for p in plan] == [10 * MB, 10 * MB, 5 * MB]
    assert not any(p.copy for p in plan)


@given(
    st.integers(10 * MB, 400 * MB),
    st.lists(st.tuples(st.integers(0, 400 * MB), st.integers(1, 80 * MB)), max_size=8),
    st.sampled_from([5 * MB, 8 * MB, 20 * MB]),
)
def test_plans_are_always_valid(size, raw_runs, part_size):
    runs = []
    for start, length in sorted(raw_runs):
        a, b = min(start, size), min(start + length, size)
        if (
            runs and a <= runs[-1][1]
        ):  # touching or overlapping: one run, as the uploader makes them
            runs[-1] = (runs[-1][0], max(b, runs[-1][1]))
        elif a < b:
            runs.append((a, b))
    plan = plan_parts(size, runs, part_size, 5 * MB)
    check(plan, size, runs, part_size, 5 * MB)
