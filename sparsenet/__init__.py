"""sparsenet: experiments on the structure of sparse neural networks (masks, not just accuracy)."""
