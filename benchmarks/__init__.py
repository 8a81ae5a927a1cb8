"""gradtensor benchmarks: side by side with the libraries users would otherwise pick."""
