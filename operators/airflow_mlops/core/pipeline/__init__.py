"""The training lifecycle as steps: one function per step, each returning a typed result."""
