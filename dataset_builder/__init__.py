"""Build datasets of short Python programs with their real line-by-line execution traces."""
