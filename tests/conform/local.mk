# rules for tests/conform/local.mk (filled in by its owner)
