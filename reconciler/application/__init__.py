"""Configuration, opening a target, and one use case per command family, wiring core to adapters."""
