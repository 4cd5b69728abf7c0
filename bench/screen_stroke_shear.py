"""Screening of two robustness levers (issue 20), not part of any recipe: the default CNN recipe with
stroke-width augmentation (a soft 3x3 dilation or erosion of each warped image) and a random shear
added to the affine warp, one seed. Writes OUT/cnn through trainer.train.train, so
bench/generalisation.py can read it; docs/training.md has the figures.

    STROKE=0.7 SHEAR=20 SEED=42 python bench/screen_stroke_shear.py OUT
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_edge.data import IMAGE_SIZE, load_dataset  # noqa: E402
from mnist_edge.errors import require  # noqa: E402
from mnist_edge.trainer import train as T  # noqa: E402

STROKE = float(os.environ.get("STROKE", "0.7"))   # max share of a full 3x3 dilation (thicker) or erosion (thinner)
SHEAR = float(os.environ.get("SHEAR", "20"))      # degrees, either way



def augmenter(seed: int):
    """trainer.train._augmenter's rotation, zoom and shift, plus a shear of up to SHEAR degrees and a
    stroke-width change of up to STROKE (thickening) or STROKE / 2 (thinning) of a 3x3 max filter."""
    tf = require("tensorflow")
    size = IMAGE_SIZE; centre = (size - 1) / 2.0
    def augment(step, batch):
        images, labels = batch
        n = tf.shape(images)[0]
        key = tf.stack([tf.constant(seed, tf.int64), step])
        u = tf.random.stateless_uniform([n, 7], seed=key, minval=-1.0, maxval=1.0)
        angle = u[:, 0] * (T.ROTATION_DEGREES * math.pi / 180.0)
        zoom = 1.0 + u[:, 1] * T.ZOOM_FRACTION
        shear = tf.tan(u[:, 4] * (SHEAR * math.pi / 180.0))
        sx, sy = u[:, 2] * T.SHIFT_FRACTION * size, u[:, 3] * T.SHIFT_FRACTION * size
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        # input = A (output - centre - shift) + centre, A = R/zoom then x += shear * y
        a, b, c, d = cos, sin, -sin, cos
        a2, b2 = a + shear * c, b + shear * d
        ox, oy = centre + sx, centre + sy
        zeros = tf.zeros_like(cos)
        transforms = tf.stack([a2, b2, centre - a2 * ox - b2 * oy, c, d, centre - c * ox - d * oy, zeros, zeros], axis=1)
        warped = tf.raw_ops.ImageProjectiveTransformV3(images=images[..., tf.newaxis], transforms=transforms,
            output_shape=tf.constant([size, size]), fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
        thick = tf.nn.max_pool2d(warped, 3, 1, "SAME")
        thin = -tf.nn.max_pool2d(-warped, 3, 1, "SAME")
        w = u[:, 5] * STROKE  # >0 thicker, <0 thinner (thinning at most half as much)
        w = tf.where(w < 0, w * 0.5, w)[:, None, None, None]
        out = tf.where(w > 0, warped + w * (thick - warped), warped + (-w) * (thin - warped))
        return out[..., 0], labels
    return augment



if __name__ == "__main__":
    T._augmenter = augmenter  # the screening's augmentation instead of the recipe's, this process only
    seed = int(os.environ.get("SEED", "42"))
    metrics = T.train(load_dataset(None), T.TrainConfig(model="cnn", seed=seed), sys.argv[1])
    print(f"stroke {STROKE} shear {SHEAR} seed {seed}: test accuracy {metrics['test_accuracy']:.4f}, "
          f"test loss {metrics['test_loss']:.4f}, {metrics['train_seconds']:.0f} s", flush=True)
