"""EpochSums: per-group sums and counts over steps, NaN left out, from numpy or torch tables."""
import math

import numpy as np
import torch

from lightning_sig.gradients.epoch_sums import EpochSums


def test_sums_leave_nan_out_and_take_numpy_or_tensor_tables():
    nan = math.nan
    table = np.array([[[1.0, nan], [2.0, 4.0]],
                      [[3.0, nan], [6.0, 8.0]]])  # (S=2 steps, G=2 groups, K=2)
    from_numpy, from_torch = EpochSums(), EpochSums()
    from_numpy.add(["a", "b"], table)
    from_torch.add(["a", "b"], torch.from_numpy(table))
    from_numpy.add(["b"], table[:, 1:])  # group b again: 4 steps in all
    from_torch.add(["b"], torch.from_numpy(table[:, 1:]))
    for sums in (from_numpy, from_torch):
        means = sums.means()  # a: (1+3)/2, never defined; b: (2+6+2+6)/4, (4+8+4+8)/4
        assert means[0] == 2.0 and math.isnan(means[1]) and means[2:] == [4.0, 6.0]
        assert sums.count.tolist() == [[2.0, 0.0], [4.0, 4.0]]
