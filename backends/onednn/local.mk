# rules for backends/onednn (filled in by its owner)
