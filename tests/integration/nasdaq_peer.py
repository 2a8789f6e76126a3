"""An independent OUCH client: Nasdaq's own SoupBinTCP client (PyPI nasdaq-protocols)
logs in to our order-entry server, enters one order and prints what comes back as
JSON lines. Run inside the lab's app namespace by test_exchange.py."""

from __future__ import annotations

import json
import sys

from nasdaq_protocols import soup

from appliance.protocols import ouch


def main() -> int:
    host, port, user, password, symbol = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    session = soup.connect((host, port), user, password, "", 1, client_heartbeat_interval=1,
                           server_heartbeat_interval=5)
    order = ouch.INBOUND["O"][1](user_ref_num=1, side="B", quantity=100, symbol=symbol, price=10_000,
                                 time_in_force="0", display="Y", capacity="A", intermarket_sweep="N",
                                 cross_type="N", cl_ord_id="NASDAQPEER", appendage_length=0, appendage=())
    session.send_unseq_data(ouch.encode(order))
    seen = 0
    while seen < 2:  # the day's start event, then our Accepted
        msg = session.receive()
        if isinstance(msg, soup.SequencedData):
            rec = ouch.decode_outbound(msg.data)
            print(json.dumps(ouch.to_json(rec)), flush=True)
            seen += 1
    session.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
