"""The exchange simulator: matching engine (``book``), synthetic flow (``flow``),
the day generator (``gen``), and the live services (``server``): the ITCH
publisher on lines A and B, the retransmission server and the OUCH order entry."""
