"""A burst of source events is one change set (issue 14): counted calls and signals, never timed.

- ``StateStore.apply_batch`` leaves the same state as applying the events one by one, returns the
  same changes in order, and calls each subscriber once;
- the app's netlink sink (``EventBatcher``) applies what arrived in one loop turn as one batch;
- the address model and the window's filter hear one insertion for a run of new adjacent rows.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui.core.model import Address, Interface, InterfaceKind
from mhgui.core.state import AddressRemoved, AddressUpsert, LinkRemoved, LinkUpsert, SourceStatus, StateStore
from mhgui.runtime import EventBatcher
from mhgui.ui.models import KeyRole

IFS = (2, 3)
LINKS = [Interface(i, f"eth{i}", InterfaceKind.ETHERNET, True, True, True, "up") for i in IFS]
POOL = [Address(i, f"2001:db8:{i}:{n:x}::1", 64) for i in IFS for n in range(6)]

event = st.one_of(
    st.sampled_from(LINKS).map(LinkUpsert),
    st.sampled_from(IFS).map(LinkRemoved),
    st.sampled_from(POOL).map(AddressUpsert),
    st.sampled_from(POOL).map(lambda a: AddressRemoved(a.key)),
    st.sampled_from(["ok", "resyncing"]).map(lambda s: SourceStatus("netlink", s)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=30), st.lists(event, max_size=30))
def test_apply_batch_is_apply_all_heard_once(before, events):
    one, batch = StateStore(), StateStore()
    one.apply_all(before)
    batch.apply_all(before)
    heard_one, heard_batch = [], []
    one.subscribe(heard_one.append)
    batch.subscribe(heard_batch.append)
    got_one = one.apply_all(events)
    got_batch = batch.apply_batch(events)
    assert batch.state == one.state
    assert batch.sources == one.sources
    assert got_batch == got_one
    assert heard_batch == ([got_one] if got_one else [])  # one call, with every change, in order
    assert [c for cs in heard_one for c in cs] == got_one


def test_apply_batch_publishes_what_came_before_a_bad_event():
    store = StateStore()
    heard = []
    store.subscribe(heard.append)
    with pytest.raises(TypeError):
        store.apply_batch([LinkUpsert(LINKS[0]), "not an event"])
    assert [c.kind for cs in heard for c in cs] == ["link-added"]
    assert 2 in store.state.interfaces


def test_event_batcher_one_batch_per_loop_turn(qloop):
    store = StateStore()
    heard = []
    store.subscribe(heard.append)
    batcher = EventBatcher(store)

    async def body():
        batcher(LinkUpsert(LINKS[0]))
        for a in POOL[:6]:
            batcher(AddressUpsert(a))
        assert heard == []  # not before the loop turns
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(heard) == 1 and len(heard[0]) == 7
        batcher(AddressRemoved(POOL[0].key))
        batcher.flush()  # at once when asked
        assert len(heard) == 2 and heard[1][0].kind == "address-removed"
        await asyncio.sleep(0)
        assert len(heard) == 2  # the scheduled flush found nothing left

    qloop.run_until_complete(body())
    assert (batcher.batches, batcher.largest) == (2, 7)
    assert set(store.state.addresses) == {a.key for a in POOL[1:6]}


@pytest.mark.gui
def test_a_burst_is_one_insertion_in_the_window_filter(qapp):
    from mhgui.ui.window import AddressFilter, LiveController

    store = StateStore()
    store.apply(LinkUpsert(LINKS[0]))
    ctl = LiveController(store, lambda: 100.0)
    try:
        proxy = AddressFilter()
        proxy.setSourceModel(ctl.addresses)
        proxy.sort(0)
        inserted = []
        ctl.addresses.rowsInserted.connect(lambda p, a, b: inserted.append((a, b)))
        burst = [AddressUpsert(Address(2, f"2001:db8:0:{i:x}::1", 64)) for i in range(500)]
        store.apply_batch(burst)
        assert inserted == [(0, 499)]  # adjacent keys: one run
        assert proxy.rowCount() == 500
        # the filter's rows are in order (the same as inserting them one by one)
        shown = [ipaddress.ip_interface(proxy.index(r, 1).data()).ip for r in range(proxy.rowCount())]
        assert shown == sorted(ipaddress.ip_address(f"2001:db8:0:{i:x}::1") for i in range(500))
    finally:
        ctl.close()


@pytest.mark.gui
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(event, max_size=12), max_size=6), st.sampled_from([0, 1, 2, 3]),
       st.booleans(), st.sampled_from([None, 2, 3]))
def test_address_filter_matches_a_sorted_filtered_copy(qapp, batches, column, descending, ifindex):
    """The window's filter shows exactly the source rows it accepts, in its sort order, after any
    batches of changes (its own oracle: the source's rows, filtered and sorted here)."""
    from PySide6.QtCore import Qt

    from mhgui.ui.models import AddressModel, SortRole
    from mhgui.ui.window import AddressFilter

    store = StateStore()
    model = AddressModel(store, lambda: 0.0)
    proxy = AddressFilter()
    proxy.setSourceModel(model)
    order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
    proxy.sort(column, order)
    proxy.set_ifindex(ifindex)
    for b in batches:
        model.apply(store.apply_batch(b))
    want = [model.key_at(r) for r in range(model.rowCount()) if ifindex is None or model.key_at(r).ifindex == ifindex]
    want.sort(key=lambda k: (model.index(model.row_of(k), column).data(SortRole), k), reverse=descending)
    got = [proxy.index(r, 0).data(KeyRole) for r in range(proxy.rowCount())]
    assert got == want
    for r, k in enumerate(got):  # the mapping both ways
        assert proxy.mapToSource(proxy.index(r, 1)).row() == model.row_of(k)
        assert proxy.mapFromSource(model.index(model.row_of(k), 1)).row() == r
