"""``tickwire demo``: the whole appliance in the lab, round by round (appliance/demo.py runs it)."""

from __future__ import annotations

import argparse

from appliance.commands.kit import Command, Report, arg, console, need_root


def cmd_demo(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import demo

    need_root("tickwire demo")
    return demo.run(args, console=None if args.json else console)


COMMANDS: tuple[Command, ...] = (
    Command(("demo",), "bring the lab up, send a MoldUDP64 feed on lines A and B from exch, show it arriving "
            "at app and standby (then again with line A impaired), build order books in the C feed worker from the "
            "live exchange over lossy lines, trade the market maker with tickwire run and check its report against "
            "the exchange's records, tear the lab down",
            cmd_demo, (
                arg("--prefix", default="twdemo", help="lab prefix for the demo (default twdemo)"),
                arg("--messages", type=int, default=300_000, help="ITCH messages per line (default 300000)"),
                arg("--rate", type=int, default=20_000, help="packets per second per line (default 20000)"),
                arg("--loss", type=float, default=2.0, metavar="PCT",
                    help="loss on feed-a-app in the second round (default 2; 0 skips that round)"),
                arg("--books-seconds", type=float, default=5.0, metavar="S",
                    help="how long the live exchange trades in the order-book round (default 5; 0 skips it)"),
                arg("--books-loss", type=float, default=5.0, metavar="PCT",
                    help="loss on both of app's feed lines in the order-book round, so that some messages only "
                         "retransmission can bring (default 5)"),
                arg("--trade-seconds", type=float, default=30.0, metavar="S",
                    help="how long tickwire run trades the market maker in the last round (default 30; 0 skips "
                         "it)"),
                arg("--keep", action="store_true", help="leave the lab up afterwards"),
            ), lambda report: None, root=True),  # the demo prints its own live view
)
