"""Pure decisions: inputs in, a decision out; no I/O, no clock (time is a parameter)."""
