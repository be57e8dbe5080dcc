# rules for backends/ref (filled in by its owner)
