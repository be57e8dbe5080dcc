# rules for backends/opencl (filled in by its owner)
