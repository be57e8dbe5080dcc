# rules for backends/neon (filled in by its owner)
