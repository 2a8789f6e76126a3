"""The risk manager's watches (appliance/riskman.py), each breach in turn, against
a worker's figures set by hand: it trips once, at the right level and target, and
journals why; a resume re-arms it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from appliance.config import RiskManager as Limits
from appliance.oms import Oms
from appliance.riskman import RiskManager


class Fake:
    def __init__(self, micro: int | None = 1_000_000):
        self.shared = SimpleNamespace(ptr=SimpleNamespace(orders_sent=0, cancels_sent=0, killed=0,
                                                          killed_strategy=0, feed=SimpleNamespace(stale=0)))
        self.books = SimpleNamespace(micro_price=lambda locate: micro)
        self.state = "up"
        self.session = SimpleNamespace(stats=lambda: {"state": self.state})


MM = [("mm", "TAAA", 1)]
TWO = [("mm-a", "TAAA", 1), ("mm-b", "TAAB", 2)]


def manager(strategies=MM, **limits):
    fake = Fake()
    trips = []
    records = []

    def trip(level, target, reason):
        trips.append((level, target, reason))
        if level == "strategy":  # what the worker does: the strategy's kill bit goes up
            fake.shared.ptr.killed_strategy |= 1 << [n for n, _, _ in strategies].index(target)
        else:
            fake.shared.ptr.killed = 1
        return {"cancels": 3}

    rm = RiskManager(Limits(**limits), Oms(), fake, fake, strategies, trip,
                     SimpleNamespace(append=lambda kind, data: records.append((kind, data))))
    return rm, fake, trips, records


def fill(rm: RiskManager, ref: int, side: str, qty: int, price: int, symbol: str = "TAAA",
         strategy: str | None = "mm") -> None:
    for ev in ({"event": "order", "type": "O", "user_ref": ref, "qty": qty, "side": side, "price": price,
                "symbol": symbol, "strategy": strategy}, {"event": "order", "type": "A", "user_ref": ref, "qty": qty},
               {"event": "order", "type": "E", "user_ref": ref, "qty": qty, "price": price}):
        rm.on_event(ev)


def test_a_loss_past_its_limit_trips_the_strategy_once_and_journals_why():
    rm, fake, trips, records = manager(max_loss=50)
    fill(rm, 1, "B", 100, 1_003_000)             # bought at 100.30, marked at 100.00: -30
    assert rm.tick(now=1.0) is None and rm.view["pnl"] == -30.0
    fake.books.micro_price = lambda locate: 999_000  # 99.90: -40
    assert rm.tick(now=2.0) is None
    fake.books.micro_price = lambda locate: 997_000  # 99.70: -60
    got = rm.tick(now=3.0)
    assert got["breach"] == "loss" and got["value"] == 60.0 and got["level"] == "strategy" and got["cancels"] == 3
    assert trips == [("strategy", "mm", "loss 60.0 past its limit 50 (mm)")]
    assert records[0][0] == "risk" and records[0][1]["breach"] == "loss" and records[0][1]["target"] == "mm"
    assert records[0][1]["view"]["strategies"]["mm"]["position"] == 100
    fake.books.micro_price = lambda locate: 900_000
    assert rm.tick(now=4.0) is None and len(trips) == 1  # latched until an operator resumes
    assert rm.view["strategies"]["mm"]["tripped"]["breach"] == "loss"


def test_an_older_journals_orders_without_a_strategy_name_count_for_the_only_strategy():
    rm, fake, trips, _ = manager(max_loss=50)
    fill(rm, 1, "B", 100, 1_006_000, strategy=None)  # -60
    assert rm.tick(now=1.0)["breach"] == "loss" and trips[0][1] == "mm"


def test_each_strategy_is_watched_on_its_own_fills_and_trips_alone():
    rm, fake, trips, _ = manager(TWO, max_loss=50)
    fake.books.micro_price = lambda locate: {1: 1_000_000, 2: 2_000_000}[locate]
    fill(rm, 1, "B", 100, 1_006_000, "TAAA", "mm-a")  # -60 on TAAA
    fill(rm, 2, "B", 100, 1_999_000, "TAAB", "mm-b")  # +10 on TAAB
    got = rm.tick(now=1.0)
    assert got["target"] == "mm-a" and [t[:2] for t in trips] == [("strategy", "mm-a")]
    v = rm.view
    assert (v["strategies"]["mm-a"]["pnl"], v["strategies"]["mm-b"]["pnl"], v["pnl"]) == (-60.0, 10.0, -50.0)
    assert v["strategies"]["mm-b"]["tripped"] is None
    fake.books.micro_price = lambda locate: {1: 1_000_000, 2: 1_994_000}[locate]  # mm-b now -50: not past
    assert rm.tick(now=2.0) is None and len(trips) == 1


def test_the_total_loss_trips_the_whole_worker_before_any_one_strategy():
    rm, fake, trips, _ = manager(TWO, max_loss=50, max_total_loss=70)
    fake.books.micro_price = lambda locate: {1: 1_000_000, 2: 2_000_000}[locate]
    fill(rm, 1, "B", 100, 1_004_000, "TAAA", "mm-a")  # -40
    fill(rm, 2, "B", 100, 2_004_000, "TAAB", "mm-b")  # -40: neither alone past 50, together past 70
    got = rm.tick(now=1.0)
    assert got["level"] == "global" and got["breach"] == "total loss" and trips == [
        ("global", None, "total loss 80.0 past its limit 70")]
    assert rm.tick(now=2.0) is None and len(trips) == 1  # tripped globally: nothing more to trip


def test_a_resume_rearms_the_watch_and_the_drawdown_counts_from_then():
    rm, fake, trips, _ = manager(max_drawdown=20)
    fill(rm, 1, "B", 100, 1_000_000)
    fake.books.micro_price = lambda locate: 1_005_000  # +50
    rm.tick(now=1.0)
    fake.books.micro_price = lambda locate: 1_002_000  # +20: 30 given back
    assert rm.tick(now=2.0)["breach"] == "drawdown"
    fake.shared.ptr.killed_strategy = 0  # an operator's tickwire resume --strategy mm
    assert rm.tick(now=3.0) is None and rm.view["strategies"]["mm"]["tripped"] is None
    fake.books.micro_price = lambda locate: 1_000_500  # +5: 15 from the new peak of +20
    assert rm.tick(now=4.0) is None
    fake.books.micro_price = lambda locate: 999_000  # -10: 30 from it
    assert rm.tick(now=5.0)["breach"] == "drawdown" and len(trips) == 2


def test_drawdown_counts_from_the_best_pnl_of_the_day():
    rm, fake, trips, _ = manager(max_drawdown=20)
    fill(rm, 1, "B", 100, 1_000_000)
    fake.books.micro_price = lambda locate: 1_005_000  # +50: the peak
    rm.tick(now=1.0)
    fake.books.micro_price = lambda locate: 1_003_500  # +35: 15 given back
    assert rm.tick(now=2.0) is None and rm.view["drawdown"] == 15.0
    fake.books.micro_price = lambda locate: 1_002_500  # +25: 25 given back
    assert rm.tick(now=3.0)["breach"] == "drawdown" and trips[0][0] == "strategy"


def test_the_reject_rate_counts_once_enough_orders_went_in_the_window():
    rm, _, trips, _ = manager(max_reject_rate=0.25, min_orders=8, reject_window=10)
    for ref in range(1, 8):
        rm.on_event({"event": "order", "type": "O", "user_ref": ref, "qty": 1, "side": "B", "price": 1})
        rm.on_event({"event": "order", "type": "J", "user_ref": ref, "qty": 1})
    assert rm.tick() is None  # 7 orders: not yet counted
    rm.on_event({"event": "order", "type": "O", "user_ref": 8, "qty": 1, "side": "B", "price": 1})
    got = rm.tick()
    assert got["breach"] == "reject rate" and got["value"] == 0.875 and trips[0][0] == "strategy"


def test_message_rate_stale_books_and_session_down_trip_at_their_levels():
    rm, fake, trips, _ = manager(max_message_rate=100)
    rm.tick(now=0.0)
    fake.shared.ptr.orders_sent, fake.shared.ptr.cancels_sent = 60, 50
    assert rm.tick(now=0.5)["breach"] == "message rate" and trips == [("global", None, "message rate 110 past its "
                                                                                         "limit 100")]
    rm, fake, trips, _ = manager(stale_books=1.0)
    fake.shared.ptr.feed.stale = 1
    assert rm.tick(now=10.0) is None and rm.tick(now=10.8) is None
    assert rm.tick(now=11.2)["breach"] == "stale books (s)" and trips[0][0] == "global"
    rm, fake, trips, _ = manager(session_down=0.5)
    fake.state = "connecting"
    assert rm.tick(now=1.0) is None and rm.view["session"] == "not yet up"  # never up yet: not a breach
    fake.state = "up"
    rm.tick(now=2.0)
    fake.state = "down"
    assert rm.tick(now=3.0) is None and rm.tick(now=3.6)["breach"] == "session down (s)"
    assert trips[0][0] == "global"


def test_nothing_watched_never_trips():
    rm, fake, trips, _ = manager()
    fill(rm, 1, "B", 100, 2_000_000)
    fake.shared.ptr.feed.stale = 1
    fake.state = "down"
    for t in range(10):
        assert rm.tick(now=float(t)) is None
    assert trips == []


def test_a_trip_that_fails_is_tried_again():
    fake = Fake()
    calls = []

    def trip(level, target, reason):
        calls.append(level)
        if len(calls) == 1:
            raise RuntimeError("worker busy")
        return {"cancels": 0}

    rm = RiskManager(Limits(stale_books=0.1), Oms(), fake, fake, MM, trip)
    fake.shared.ptr.feed.stale = 1
    rm.tick(now=0.0)
    assert rm.tick(now=1.0) is None and rm.tripped is None
    assert rm.tick(now=2.0)["breach"] == "stale books (s)" and calls == ["global", "global"]


@pytest.mark.parametrize("bad", [{"max_reject_rate": 0}, {"max_reject_rate": 1.5}, {"max_message_rate": 0}])
def test_limits_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        Limits(**bad)
