# rules for bench (filled in by its owner)
