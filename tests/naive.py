"""Slow, obviously correct reference versions of the lab's kernels.

Tests compare the fast implementations with these on random and awkward
inputs. Clarity beats speed here: plain loops, no vectorisation tricks.
"""

from __future__ import annotations

import numpy as np
