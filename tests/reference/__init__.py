"""Independent oracles for the exactness suite (no neurosnap imports in here)."""
