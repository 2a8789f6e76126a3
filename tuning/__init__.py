"""Host tuning: audit and apply CPU isolation, IRQs, NIC queues, memory, clocks.

One module per concern (cpu, irq, nic, memory, clock, sysctl), each with a
read-only audit and an apply with a dry run. Built by the tuning issue (#9);
until then this package holds nothing but this description.
"""

__all__: list[str] = []
