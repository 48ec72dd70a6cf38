"""netdiag telnet: a select-based raw TCP client that speaks the telnet protocol."""
