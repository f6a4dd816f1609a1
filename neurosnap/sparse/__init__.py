"""Event and weight sparsity: connectivity graphs, sparse influence kernels, SnAp patterns."""
