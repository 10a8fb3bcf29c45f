"""Lambda entry points, one per event source: parse, make one use-case call, answer."""
