"""Training under a given mask, fixed for the whole run: what retraining (E1) and the replayed runs do."""
from __future__ import annotations

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm


@register
class Fixed(Algorithm):
    """The base class's fixed-mask training, with the mask the trainer is given."""
    reference = "facebookresearch/open_lth: models/base.py, pruning/pruned_model.py (training under a fixed mask)"

    needs_mask = True
