# rules for backends/x86 (filled in by its owner)
