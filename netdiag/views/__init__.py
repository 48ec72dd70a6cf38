"""Each command's display: rich on a terminal, plain columns in pipes, JSON on request."""
