"""A feed nobody can spoof or derail (issue 16): the lab exchange publishes a day while a rogue
host on the feed network (the lab's standby namespace, on both feed lines) sends MoldUDP64 to
line A's group: a heartbeat claiming the day is at sequence 10**12, the next sequence number's
message with a price the exchange never quoted (sniffed off the group, so it races the real one),
and a foreign session's messages. The appliance's books equal the exchange's own at the end and
never go stale; the refusal counters say who refused what: the XDP rule (af_xdp input) or the
worker itself (kernel sockets, no XDP in front)."""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from appliance.protocols import itch, moldudp64
from common.netns import in_netns
from dpdk.worker import STATE_DIR, SharedStats, remove_state
from labtools import TICKWIRE, ExchangeProcess, tw, tw_json

pytestmark = pytest.mark.root

SESSION = "TWLAB00001"  # the lab exchange's
HUGE = 10**12


def fake_add(ref: int) -> bytes:
    """An add order at a price the exchange never quotes (locate 1)."""
    return itch.encode(dataclasses.replace(itch.example("A", 0), stock_locate=1, order_reference_number=ref,
                                           side="B", shares=100, price=99_990_000))


class Rogue:
    """A host on line A's network sending to line A's group from its own address (standby's)."""

    def __init__(self, lab):
        net = lab.network("feed-a")
        self.group = (net.group, net.group_port)
        self.addr = net.address("standby")
        with in_netns(lab.ns("standby")):  # this thread only; the sockets stay in that namespace
            self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.addr))
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        self.out.bind((self.addr, 26400))  # even the publisher's port: only its address differs
        self.sniff.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sniff.bind(self.group)
        self.sniff.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                              socket.inet_aton(self.group[0]) + socket.inet_aton(self.addr))
        self.sniff.settimeout(2.0)
        self.sent = 0
        self.kinds: dict[str, int] = {}

    def _send(self, kind: str, pkt: bytes) -> None:
        self.out.sendto(pkt, self.group)
        self.sent += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def next_sequence(self) -> int:
        """The exchange's next sequence number, off the group."""
        while True:
            p = moldudp64.unpack(self.sniff.recv(2048))
            if p.session == moldudp64.session_bytes(SESSION) and 0 < p.count < 0xFFFF:
                return p.sequence + p.count

    def attack(self, rounds: int, every: float) -> None:
        ref = 900_000
        for _ in range(rounds):
            self._send("huge heartbeat", moldudp64.heartbeat(SESSION, HUGE))
            nxt = self.next_sequence()
            for seq in range(nxt, nxt + 4):  # the next messages, before the exchange's own
                ref += 1
                self._send("next sequence, fake price", moldudp64.pack(SESSION, seq, [fake_add(ref)]))
            self._send("foreign session", moldudp64.pack("ROGUE00001", 1, [fake_add(ref + 1)]))
            self._send("foreign session", moldudp64.heartbeat("ROGUE00001", HUGE))
            time.sleep(every)

    def close(self) -> None:
        self.out.close()
        self.sniff.close()


class Watch:
    """The worker's shared statistics, sampled every 50 ms: was it ever stale or in a gap?"""

    def __init__(self, name: str):
        self.path = STATE_DIR / f"{name}.stats"
        self.samples: list[tuple[int, int, int]] = []  # (applied, stale, in_gap)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stats = SharedStats(self.path)
        try:
            while not self.stop.wait(0.05):
                st = stats.snapshot()
                if st.running:
                    self.samples.append((st.feed.applied, st.feed.stale, st.feed.in_gap))
        finally:
            stats.close()

    def close(self) -> list[tuple[int, int, int]]:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.samples


class FeedWorker:
    """`tickwire feed run --prefix` in the lab's app namespace, started before the exchange."""

    def __init__(self, lab, name: str, *extra: str):
        self.proc = subprocess.Popen([TICKWIRE, "feed", "run", "--prefix", lab.prefix, "--name", name,
                                      "--until-end", "--duration", "90", "--top", "0", "--json", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the feed worker did not start"
            st = tw("feed", "stats", "--name", name, "--json")
            if st.returncode == 0 and json.loads(st.stdout)["running"] and json.loads(st.stdout)["pid"] == \
                    self.proc.pid:
                return
            time.sleep(0.2)

    def result(self) -> dict:
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err[-3000:]
        return json.loads(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.communicate(timeout=30)


def same_books(exchange: dict, worker: dict) -> None:
    got = {b["symbol"]: b for b in worker["books"]}
    assert set(exchange["books"]) <= set(got)
    for sym, want in exchange["books"].items():
        assert got[sym]["bids"] == want["bids"], sym
        assert got[sym]["asks"] == want["asks"], sym


@pytest.mark.parametrize("source", ["af_xdp", "socket", "asyncio"])
def test_a_rogue_on_the_feed_network_neither_spoofs_nor_derails_the_books(lab, tmp_path, source):
    name = lab.prefix
    worker = FeedWorker(lab, name, "--input", source)
    rogue = Rogue(lab)
    watch = Watch(name)
    xdp_rules = None
    try:
        ex = ExchangeProcess(lab, tmp_path, duration=6, rate=2000)
        time.sleep(1.0)
        rogue.attack(rounds=10, every=0.3)
        assert worker.proc.poll() is None, worker.proc.communicate()  # still running
        if source == "af_xdp":  # the filter's counters, while the run still pins them
            xdp_rules = {r["rule"]: r for r in tw_json("xdp", "stats", "feed-a", "--netns", lab.ns("app"))["rules"]}
        report = ex.finish()
        rep = worker.result()
    finally:
        samples = watch.close()
        rogue.close()
        worker.kill()
    f = rep["stats"]["feed"]
    messages = report["feed"]["messages"]
    same_books(report, rep)  # the exchange's own books, from its own records
    assert f["applied"] == messages and f["gaps"] == 0 and f["stale"] is False and f["next_seq"] == messages + 1
    assert f["other_session"] == 0  # the foreign session never reached the session check
    assert samples and not any(stale or gap for _, stale, gap in samples), "the books went stale"
    assert rogue.kinds == {"huge heartbeat": 10, "next sequence, fake price": 40, "foreign session": 20}
    a, b = f["refused"]["A"], f["refused"]["B"]
    if source == "af_xdp":  # dropped in XDP: the worker never saw them
        rule_a, rule_b = xdp_rules["239.198.1.1:26400"], xdp_rules["239.198.2.1:26400"]
        assert rule_a["source"] == "198.18.1.1:26400" and rule_a["wrong_source"] == rogue.sent
        assert rule_b["wrong_source"] == 0
        assert a == {"wrong_source": 0, "wrong_session": 0, "unconfirmed_jump": 0, "unasked_answer": 0}
    else:  # no XDP in front: the worker's own receive stage refused them, and said so (rate-limited)
        assert a["wrong_source"] == rogue.sent and a["unconfirmed_jump"] == 0
        assert 1 <= rep["events"]["feed_refused"] <= 10
    assert sum(b.values()) == 0 and sum(f["refused"]["retransmission"].values()) == 0


def test_a_replay_given_the_lines_sources_refuses_every_other_senders_datagram(tmp_path):
    """The worker's own check on a port's frames (the IP/UDP header: what af_xdp and pcap ports
    hand it), without the XDP filter in front: a capture with a rogue's datagrams in it."""
    from appliance.protocols import capture

    publisher, rogue, group = ("198.18.1.1", 26400), ("198.18.1.66", 26400), ("239.198.1.1", 26400)
    msgs = [itch.encode(itch.example("S", 0))] + [fake_add(i) for i in range(1, 41)]
    pcap = tmp_path / "feed.pcap"
    spoofs = 0
    with capture.CaptureWriter(pcap) as w:
        for seq in range(1, len(msgs) + 1):
            if seq % 10 == 0:  # before the exchange's own copy: the next message, and a jump
                w.udp(moldudp64.pack(SESSION, seq, [fake_add(900_000 + seq)]), rogue, group)
                w.udp(moldudp64.heartbeat(SESSION, HUGE), rogue, group)
                w.udp(moldudp64.pack(SESSION, seq, [fake_add(800_000 + seq)]), ("198.18.1.1", 40000), group)
                spoofs += 3
            w.udp(moldudp64.pack(SESSION, seq, [msgs[seq - 1]]), publisher, group)
    try:
        rep = tw_json("feed", "run", "--pcap", str(pcap), "--group", "A=239.198.1.1:26400", "--source",
                      "A=198.18.1.1:26400", "--name", "spoofreplay", "--hugepages", "off", "--top", "0")
    finally:
        remove_state("spoofreplay")
    f = rep["stats"]["feed"]
    assert f["refused"]["A"]["wrong_source"] == spoofs
    assert f["applied"] == len(msgs) and f["gaps"] == 0 and f["stale"] is False
    assert rep["events"]["feed_refused"] == 1  # one event for the lot: they came within a second
    (book,) = [b for b in rep["books"] if b["locate"] == 1]
    assert sum(s for _, s, _ in book["bids"]) == 100 * 40  # the exchange's 40 orders, none of the rogue's
