"""rlhfkit: reinforcement learning from human feedback, end to end.

Importing the package is cheap and never imports torch: the annotation server and the data
tools stay light, and the training stack is imported only by the modules that need it.
"""

__version__ = "0.1.0"
