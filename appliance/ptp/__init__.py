"""PTP clock health on linuxptp: ptp4l's configuration from the appliance YAML
(conf), a management client on ptp4l's socket (mgmt, client), the health checks
(health), a monitor over time with events and Prometheus metrics (monitor,
metrics), and the compliance report (report). ``tickwire ptp ...`` is its CLI."""
