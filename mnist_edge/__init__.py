"""mnist-edge: train MNIST digit classifiers, export them with proven parity, run them anywhere.

The command line lives in `mnist_edge.cli`; the work is done by the packages `trainer`,
`export`, `runtime` and `demo`.
"""

__version__ = "0.1.0"
