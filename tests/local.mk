# rules for tests (filled in by its owner)
