"""Build the MLP and CNN, train them on MNIST-format data, and explain the result.

- `models`: `build_mlp`, `build_cnn` and their training recipes.
- `train`: `train(dataset, TrainConfig, out_dir)` writes model, metrics, plots, report.
- `record`: what a trained model folder says about itself (class names, preprocessing, data fingerprint).
- `analysis`: confusion matrix, per-class scores, mistakes, overfitting verdict.
- `report`: the plots and report.md.

The data itself is read by `mnist_edge.data`, which every layer may use. Importing this package
imports nothing heavy; TensorFlow loads inside the functions that train.
"""
