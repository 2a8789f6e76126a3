"""The lab: the colo network on one machine.

``topology`` (the plan), ``net`` (build, inspect, remove with netlink), ``impair``
and ``impaird`` (link impairment), ``traffic`` (a feed sender and receiver),
``state`` (what the kernel cannot hold). The exchange simulator lands in
``appliance/lab/exchange/``.
"""
