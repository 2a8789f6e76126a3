"""Order events as Python reads them: which packet triggered an order, the time of
each stage from its arrival to the send (they add up to the tick-to-trade), and
how an operator sees them."""

from __future__ import annotations

from appliance.views import event_text
from dpdk import native
from dpdk.books import ORDER_STAGES, event_dict


def order_event(code: str, **fields) -> dict:
    ffi, lib = native()
    ev = ffi.new("struct tw_event *")
    ev.type, ev.code, ev.a, ev.b = lib.TW_EV_ORDER, ord(code), 16, 100
    for k, v in fields.items():
        if k == "stage_ns":
            for i, x in enumerate(v):
                ev.stage_ns[i] = x
        elif k == "symbol":
            ffi.memmove(ev.symbol, v.encode().ljust(8), 8)
        else:
            setattr(ev, k, v)
    return event_dict(ev[0])


def test_the_stage_names_follow_the_c_enum_and_the_event_is_88_bytes():
    ffi, lib = native()
    assert len(ORDER_STAGES) == lib.TW_OS_N == len(ffi.new("struct tw_event *").stage_ns)
    assert [getattr(lib, f"TW_OS_{s.upper()}") for s in ORDER_STAGES] == list(range(lib.TW_OS_N))
    assert ffi.sizeof("struct tw_event") == 88  # a multiple of 4: an rte_ring element


def test_a_sent_order_names_its_packet_and_its_stages_add_up_to_its_tick_to_trade():
    e = order_event("O", locate=1, symbol="TAAA", line=1, seq=1491, stage_ns=[2708, 331, 488, 176, 484, 6998])
    assert e == {"ts_ns": 0, "event": "order", "type": "O", "user_ref": 16, "qty": 100, "locate": 1,
                 "symbol": "TAAA", "line": "B", "seq": 1491,
                 "stages_ns": {"wire": 2708, "queue": 331, "apply": 488, "decide": 176, "risk": 484, "send": 6998},
                 "tick_to_trade_ns": 11185}
    assert event_text(e) == "order 16 sent: 100 TAAA, 11.2 µs after the arrival of line B packet 1,491"


def test_an_order_a_timer_sent_has_no_packet_and_the_answers_read_plainly():
    timer = order_event("O", locate=1, symbol="TAAA")
    assert "seq" not in timer and "stages_ns" not in timer and event_text(timer) == "order 16 sent: 100 TAAA"
    no_stamp = order_event("O", locate=1, symbol="TAAA", seq=7)  # a packet without an arrival stamp
    assert no_stamp["seq"] == 7 and "stages_ns" not in no_stamp
    assert event_text(order_event("N")) == "order 16 [red]not sent[/]: the link broke before it was written"
    assert event_text(order_event("E")) == "order 16 executed: 100"
    assert event_text(order_event("J")) == "order 16 rejected: 100"
    assert event_text(order_event("X")) == "order 16 cancel sent: 100"
    fill = order_event("E", price=1_000_100, side=ord("B"), seq=42)
    assert (fill["price"], fill["side"], fill["ouch_seq"]) == (1_000_100, "B", 42)  # the venue's sequence number
    assert "line" not in fill and "stages_ns" not in fill
