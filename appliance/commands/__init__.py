"""The ``tickwire`` command, one module per verb group.

Each group module holds its handlers and renderers and a ``COMMANDS`` tuple of
:class:`~appliance.commands.kit.Command` rows; ``appliance/cli.py`` joins the
groups into one table and builds the argparse tree from it. ``kit`` is what every
group shares (the row type, ``arg``, ``UsageError``, ``need_root``, the console,
``repeat``, the argparse tree of a table). The rich views of reports that several
groups and the demo draw are appliance/views.py, below the CLI. Nothing below the
CLI imports it: the library is called, never calls back.
"""
