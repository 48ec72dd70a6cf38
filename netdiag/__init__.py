"""netdiag: network diagnostics for sysadmins."""

__version__ = "0.1.0"
