# rules for tests/formats.mk (filled in by its owner)
