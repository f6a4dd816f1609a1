"""Independent oracles for the exactness suite (``torch_cells.py`` imports nothing of neurosnap),
and the test-only products of the sparse kernels (``sparse_products.py``)."""
