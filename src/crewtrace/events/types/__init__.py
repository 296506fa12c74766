"""Event types, one module per family."""
