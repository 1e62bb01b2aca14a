"""exfil-monitor: catches customer-data exfiltration in an online shop while it happens."""

__version__ = "0.1.0"
