# rules for bench/info.mk (filled in by its owner)
