"""Load and check MNIST-format data, build the MLP and CNN, train them, and explain the result.

- `trainer.data`: IDX / npz loading with every byte checked; where the data comes from.
- `trainer.download`: verified, atomic download of the public mnist.npz (the last resort).
- `trainer.models`: `build_mlp`, `build_cnn` and their training recipes.
- `trainer.train`: `train(dataset, TrainConfig, out_dir)` writes model, metrics, plots, report.
- `trainer.analysis`: confusion matrix, per-class scores, mistakes, overfitting verdict.
- `trainer.report`: the plots and report.md.

Importing this package imports nothing heavy; TensorFlow loads inside the functions that train.
"""
