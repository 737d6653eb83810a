"""E1's variants by name: how a retraining resets a trained run's weights, keeping (or, for the control, shuffling)
its final mask (sparsenet.reinit does it).

After Zhou et al. 2019 (uber-research/deconstructing-lottery-tickets, get_init_loss_train_lottery.py):
- ``rewind``: the run's own initial weights (init.safetensors: for imp, the rewind weights). Where the run
  trained its final mask from those weights (imp's last round, static and pruned-at-init masks), this replays
  the run exactly (same seed, data order, weights, mask and steps), so it is not trained again: the trained run
  is recorded as the result, marked ``copy_of_source``;
- ``reinit``: a fresh initialisation from another seed;
- ``signed_constant``: +-sigma of each layer's initial weights, with their signs; both taken from the weights
  the run was initialised with (round 0's for imp, also after late rewinding), as Zhou et al. take them from
  the initial weights; the other parameters (biases, batch norm) are the run's own starting values;
- ``reshuffle``: the run's own mask, its own initial values permuted among the kept positions of each layer
  (Zhou et al.'s reshuffle: the mask with the layer's distribution of initial values, not their placement);
- ``shuffle_fanin``: the run's own initial weights under a mask shuffled within each output unit (a linear
  layer's row, a conv's output channel): every unit keeps its fan-in, the exact wiring is destroyed;
- ``shuffle``: the run's own initial weights under a mask shuffled within each layer (same per-layer density,
  structure destroyed: the control that makes the claim falsifiable).
Together, shuffle_fanin and shuffle separate what the exact wiring, the per-unit fan-in and the per-layer
density carry.
"""
from __future__ import annotations

VARIANTS = ("rewind", "reinit", "signed_constant", "reshuffle", "shuffle_fanin", "shuffle")
