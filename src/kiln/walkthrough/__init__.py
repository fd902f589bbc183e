"""The article's section 4 worked by hand in NumPy, checked against torch autograd."""

from kiln.walkthrough.digits import train_digits
from kiln.walkthrough.network import Params, backward, forward, step
from kiln.walkthrough.story import walkthrough

__all__ = ["Params", "backward", "forward", "step", "train_digits", "walkthrough"]
