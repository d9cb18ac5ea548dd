"""Training data: reading, fingerprinting, splitting, and the Great Expectations checks."""
