// The canvas part of the MNIST recipe, written down in docs/preprocessing.md and kept equal to the
// Python runtime (mnist_edge.runtime.preprocess: to_mnist and to_plain) by tests that run both on
// the same drawings. Every constant is read from the spec file both read, under the same name.
//
//   RGBA pixels -> grey + alpha -> ink (light on a zero background) -> crop to the ink ->
//   thicken strokes too thin to survive the downscale -> fit the box (Pillow's LANCZOS) ->
//   centre of mass at the centre (integer shift) -> Float32Array in [0, 1]
//
// Arithmetic follows the Python code's float32 steps (Math.fround) where it changes results.

import { BOX, LANCZOS, reduce, resize } from './resample.js';
import SPEC from './contract/preprocess_spec.json' with { type: 'json' };

// The constants come from the one file the Python recipe reads too (runtime/preprocess_spec.json,
// copied to contract/ by `python -m mnist_edge.contract`); stroke widths are in pixels of MNIST's
// 20x20 box (REFERENCE_BOX), so they are shares of that box.
const {
  BORDER_FRACTION,
  BACKGROUND_GRID,
  BACKGROUND_SAMPLES,
  FLAT_BACKGROUND,
  SMALL_IMAGE,
  MIN_INK_CONTRAST,
  NOISE_SIGMAS,
  INK_FLOOR,
  INK_PEAK_PERCENTILE,
  MIN_INK_PIXELS,
  SPECK_MASS,
  MAX_INK_WIDTH_RATIO,
  MIN_STROKE,
  TARGET_STROKE,
  REFERENCE_BOX,
  WORK_FACTOR,
  MNIST_SIZE,
  MNIST_BOX,
} = SPEC;
export { INK_PEAK_PERCENTILE };

const f32 = Math.fround;
const INV255 = f32(1 / 255);
const LEVELS = Float32Array.from({ length: 256 }, (_, k) => f32(k * INV255)); // an 8-bit value in [0, 1]

/** The drawing holds no digit (blank, a speck, a line): the message says which. */
export class NoDigitError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NoDigitError';
  }
}

/**
 * The model input for canvas pixels, by the manifest's input spec.
 * @param {{data: Uint8ClampedArray, width: number, height: number}} pixels  RGBA, as getImageData gives
 * @param {object} input  manifest.input: {shape: [batch, height, width], preprocessing: {kind, box}}
 * @returns {Float32Array} height * width values in [0, 1]
 */
export function prepare(pixels, input) {
  const [, height, width] = input.shape;
  const { kind, box } = input.preprocessing;
  if (kind === 'digit') {
    if (height !== width) throw new Error(`digit preprocessing needs a square input, the model takes ${height}x${width}`);
    return toMnist(pixels, height, box || Math.round((height * MNIST_BOX) / MNIST_SIZE));
  }
  if (kind === 'plain') return toPlain(pixels, height, width);
  throw new Error(`unknown preprocessing kind ${JSON.stringify(kind)}`);
}

/** Canvas pixels as MNIST: fit in box x box, mass-centred in size x size. */
export function toMnist(pixels, size = MNIST_SIZE, box = MNIST_BOX) {
  const { grey, alpha } = greyAndAlpha(pixels);
  const crop = ink(grey, alpha, pixels.width, pixels.height);
  checkDigitShape(crop);
  return centre(fitBox(crop, box), size);
}

/** The whole canvas, grey x alpha (transparency is black), scaled to fit and centred; no crop. */
export function toPlain(pixels, height = MNIST_SIZE, width = MNIST_SIZE) {
  const { grey, alpha } = greyAndAlpha(pixels, { keepOpaqueAlpha: true });
  const n = grey.length;
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = alpha ? grey[i] * alpha[i] : grey[i];
  const scale = Math.min(height / pixels.height, width / pixels.width);
  const fw = Math.max(1, roundHalfEven(pixels.width * scale));
  const fh = Math.max(1, roundHalfEven(pixels.height * scale));
  let picture = { data: values, width: pixels.width, height: pixels.height };
  if (fw !== picture.width || fh !== picture.height) picture = resize(picture, fw, fh, scale < 1 ? BOX : LANCZOS);
  const out = new Float32Array(height * width);
  const top = Math.floor((height - fh) / 2);
  const left = Math.floor((width - fw) / 2);
  for (let y = 0; y < fh; y++) {
    for (let x = 0; x < fw; x++) out[(top + y) * width + left + x] = clip01(picture.data[y * fw + x]);
  }
  return out;
}

// --- grey and alpha ------------------------------------------------------------------------

/** Pillow's RGBA -> LA conversion (ITU-R 601 luma in 16.16 fixed point), each scaled to [0, 1].
 *  alpha is null when every pixel is opaque (unless keepOpaqueAlpha). */
export function greyAndAlpha({ data, width, height }, { keepOpaqueAlpha = false } = {}) {
  const n = width * height;
  const grey = new Float32Array(n);
  let opaque = true;
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    grey[i] = LEVELS[(data[j] * 19595 + data[j + 1] * 38470 + data[j + 2] * 7471 + 0x8000) >> 16];
    if (data[j + 3] !== 255) opaque = false;
  }
  if (opaque && !keepOpaqueAlpha) return { grey, alpha: null }; // no alpha plane to fill (a photo)
  const alpha = new Float32Array(n);
  for (let i = 0, j = 3; i < n; i++, j += 4) alpha[i] = LEVELS[data[j]];
  return { grey, alpha };
}

// --- the ink map ---------------------------------------------------------------------------

/** The ink cropped to its bounding box, light on 0, scaled so its core is 1. Throws NoDigitError. */
function ink(grey, alpha, width, height) {
  const crop = inkWindow(grey, alpha, width, height);
  const inked = crop.data.filter((v) => v > 0);
  // Scale so the ink's core is 1.0, as in MNIST.
  const scale = f32(1 / percentile(inked, INK_PEAK_PERCENTILE));
  for (let i = 0; i < crop.data.length; i++) crop.data[i] = Math.min(f32(crop.data[i] * scale), 1);
  return crop;
}

/** The ink (light on 0, not yet scaled) cropped to its bounding box without stray specks (runs of
 *  rows or columns under SPECK_MASS of it), and the crop's top and left in the image: Python's
 *  ink_window followed by _ink_span. Throws NoDigitError. */
export function inkWindow(grey, alpha, width, height) {
  let values = grey;
  if (alpha) {
    if (strokesInAlpha(grey, alpha, width, height)) {
      values = alpha; // strokes on a transparent canvas: the alpha channel is the drawing
    } else {
      values = new Float32Array(grey.length); // something opaque on a transparent margin: onto white
      for (let i = 0; i < grey.length; i++) values[i] = f32(f32(grey[i] * alpha[i]) + f32(1 - alpha[i]));
    }
  }
  const step = Math.max(1, Math.floor(Math.max(width, height) / BACKGROUND_SAMPLES));
  const sample = strided(values, width, height, step);
  const invert = paperIsLight(values, sample);
  const sigma = noiseSigma(values, width, height);
  let paperSample = sample;
  if (invert) paperSample = { ...sample, data: sample.data.map((v) => f32(1 - v)) };
  const background = paperLevel(paperSample, width, height, sigma);
  const { level, peak } = inkLevel(values, width, height, background, invert);
  if (peak < MIN_INK_CONTRAST || peak < NOISE_SIGMAS * sigma) {
    throw new NoDigitError(`no digit found: the image is blank (strongest ink contrast ${pythonFixed(peak, 2)})`);
  }
  const threshold = f32(Math.max(NOISE_SIGMAS * sigma, INK_FLOOR * peak));
  const { count, rows: rowMass, cols: colMass } = inkMass(level, width, height, threshold);
  if (count < MIN_INK_PIXELS) throw new NoDigitError(`no digit found: the image is blank (${count} ink pixels)`);
  const [top, bottom] = inkSpan(rowMass);
  const [left, right] = inkSpan(colMass);
  const cw = right - left;
  const ch = bottom - top;
  const crop = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) crop.set(level.subarray((top + y) * width + left, (top + y) * width + left + cw), y * cw);
  return { data: crop, width: cw, height: ch, top, left };
}

let levelScratch = new Float32Array(0); // inkLevel's output, reused: inkWindow keeps only a crop of it

/** The ink's level (light on 0): the values less the paper's level (or the paper's level less the
 *  values, on light paper), in float32, and its peak. `background`: a number, or the quadratic
 *  surface's description from paperLevel, evaluated here row by row without being stored. */
function inkLevel(values, width, height, background, invert) {
  const n = width * height;
  if (levelScratch.length < n) levelScratch = new Float32Array(n);
  const level = levelScratch.subarray(0, n);
  let peak = -Infinity;
  if (typeof background === 'number') {
    const b = f32(background);
    const white = f32(1 - background);
    for (let i = 0; i < n; i++) {
      const v = f32(invert ? white - values[i] : values[i] - b);
      level[i] = v;
      if (v > peak) peak = v;
    }
    return { level, peak };
  }
  const { rowPart, rowSlope, columnPart, fx } = background;
  for (let y = 0; y < height; y++) {
    const yPart = rowPart(y);
    const xyPart = rowSlope(y);
    const row = y * width;
    if (invert) {
      for (let x = 0; x < width; x++) {
        const v = f32(f32(1 - f32(f32(yPart + columnPart[x]) + f32(xyPart * fx[x]))) - values[row + x]);
        level[row + x] = v;
        if (v > peak) peak = v;
      }
    } else {
      for (let x = 0; x < width; x++) {
        const v = f32(values[row + x] - f32(f32(yPart + columnPart[x]) + f32(xyPart * fx[x])));
        level[row + x] = v;
        if (v > peak) peak = v;
      }
    }
  }
  return { level, peak };
}

/** Ink is what stands above `threshold`; the rest of `level` is set to 0. The ink pixels' count
 *  and the float32 sums of `sums`, made in the same pass (a pixel that is not ink adds 0 to its
 *  column, and a row without ink sums to 0: the same sums, in the same order). */
function inkMass(level, width, height, threshold) {
  const rows = new Float32Array(height);
  const cols = new Float32Array(width);
  let count = 0;
  for (let y = 0; y < height; y++) {
    const start = y * width;
    const before = count;
    for (let x = 0; x < width; x++) {
      const v = level[start + x];
      if (v > threshold) {
        count++;
        cols[x] = cols[x] + v;
      } else {
        level[start + x] = 0;
      }
    }
    if (count !== before) rows[y] = pairwiseSum(level, start, width);
  }
  return { count, rows, cols };
}

function strided(values, width, height, step) {
  const w = Math.ceil(width / step);
  const h = Math.ceil(height / step);
  const data = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = values[y * step * width + x * step];
  return { data, width: w, height: h };
}

/** The outer 5% of each side (numpy's slices of Python's _border, in the same order). */
function border({ data, width, height }) {
  const dy = Math.max(1, roundHalfEven(height * BORDER_FRACTION));
  const dx = Math.max(1, roundHalfEven(width * BORDER_FRACTION));
  const parts = [];
  const top = Math.min(dy, height);
  parts.push(data.subarray(0, top * width), data.subarray(Math.max(0, height - dy) * width, height * width));
  for (let y = dy; y < height - dy; y++) parts.push(data.subarray(y * width, y * width + Math.min(dx, width)));
  for (let y = dy; y < height - dy; y++) parts.push(data.subarray(y * width + Math.max(0, width - dx), (y + 1) * width));
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function strokesInAlpha(grey, alpha, width, height) {
  if (median(border({ data: alpha, width, height })) > 0.05) return false;
  let count = 0;
  let sum = 0;
  for (let i = 0; i < grey.length; i++) {
    if (alpha[i] > 0.5) {
      count++;
      sum += grey[i];
    }
  }
  if (count < grey.length / 2) return true;
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < grey.length; i++) if (alpha[i] > 0.5) squares += (grey[i] - mean) ** 2;
  return Math.sqrt(squares / count) < 0.1;
}

function paperIsLight(values, sample) {
  let low = Infinity;
  let high = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return median(border(sample)) > (low + high) / 2;
}

/** The paper's noise: robust spread (MAD) of neighbour differences on a strided grid. */
function noiseSigma(values, width, height) {
  if (width < 2) return 0;
  const step = Math.max(1, Math.floor(Math.max(width, height) / BACKGROUND_SAMPLES));
  const perRow = Math.ceil((width - 1) / step);
  const diffs = new Float32Array(Math.ceil(height / step) * perRow);
  let k = 0;
  for (let y = 0; y < height; y += step) {
    for (let x = 0; x < width - 1; x += step) diffs[k++] = values[y * width + x + 1] - values[y * width + x];
  }
  const m = median(diffs);
  const mad = median(diffs.map((d) => Math.abs(f32(d - m))));
  return (1.4826 * mad) / Math.sqrt(2);
}

/** The paper's level (light-on-dark): one number, or a quadratic surface for uneven lighting
 *  ({rowPart, rowSlope, columnPart, fx}: see the end, and inkLevel), fitted to the medians of
 *  coarse cells that are paper (Python's _background). */
function paperLevel(sample, width, height, sigma) {
  if (Math.max(width, height) <= SMALL_IMAGE) return median(sample.data);
  const cell = Math.max(2, Math.ceil(Math.max(sample.width, sample.height) / BACKGROUND_GRID));
  const rows = Math.ceil(sample.height / cell);
  const cols = Math.ceil(sample.width / cell);
  const levels = [];
  const design = [];
  const block = new Float32Array(cell * cell);
  for (let r = 0; r < rows; r++) {
    const cy = Math.min(((r + 0.5) * cell) / sample.height, 1) * 2 - 1;
    for (let c = 0; c < cols; c++) {
      const cx = Math.min(((c + 0.5) * cell) / sample.width, 1) * 2 - 1;
      let k = 0;
      for (let y = r * cell; y < (r + 1) * cell; y++) {
        const sy = Math.min(y, sample.height - 1); // numpy's edge padding
        for (let x = c * cell; x < (c + 1) * cell; x++) block[k++] = sample.data[sy * sample.width + Math.min(x, sample.width - 1)];
      }
      levels.push(median(block));
      design.push([1, cx, cy, cx * cx, cx * cy, cy * cy]);
    }
  }
  const tolerance = Math.max(FLAT_BACKGROUND, (5 * sigma) / cell);
  let paper = levels.map(() => true);
  let coef;
  for (let iteration = 0; iteration < 5; iteration++) {
    coef = leastSquares(design.filter((_, i) => paper[i]), levels.filter((_, i) => paper[i]));
    const below = levels.map((level, i) => level - dot(design[i], coef) <= tolerance);
    const count = below.filter(Boolean).length;
    if (count < 6 || below.every((b, i) => b === paper[i])) break;
    paper = below;
  }
  const fitted = design.map((row) => dot(row, coef));
  if (Math.max(...fitted) - Math.min(...fitted) < FLAT_BACKGROUND) return median(levels.filter((_, i) => paper[i]));
  const [c0, cX, cY, cXX, cXY, cYY] = coef.map(f32);
  // The surface at (x, y), in float32 as Python computes it: f32(f32(rowPart(y) + columnPart[x]) +
  // f32(rowSlope(y) * fx[x])). The parts that depend on x alone are computed once per column.
  const fx = new Float32Array(width);
  const columnPart = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    fx[x] = f32(width > 1 ? x * (2 / (width - 1)) - 1 : -1);
    columnPart[x] = f32(f32(cX * fx[x]) + f32(f32(cXX * fx[x]) * fx[x]));
  }
  const fy = (y) => f32(height > 1 ? y * (2 / (height - 1)) - 1 : -1);
  return {
    rowPart: (y) => f32(f32(c0 + f32(cY * fy(y))) + f32(f32(cYY * fy(y)) * fy(y))),
    rowSlope: (y) => f32(cXY * fy(y)),
    columnPart,
    fx,
  };
}

/** First and one-past-last index holding the ink, leaving out specks (runs under SPECK_MASS). */
function inkSpan(mass) {
  const runs = [];
  let total = 0;
  for (let i = 0; i < mass.length; i++) {
    total += mass[i];
    if (mass[i] > 0) {
      const last = runs[runs.length - 1];
      if (last && last.stop === i) {
        last.stop = i + 1;
        last.mass += mass[i];
      } else {
        runs.push({ start: i, stop: i + 1, mass: mass[i] });
      }
    }
  }
  const kept = runs.filter((run) => run.mass >= SPECK_MASS * total);
  if (kept.length === 0) return [runs[0].start, runs[runs.length - 1].stop];
  return [kept[0].start, kept[kept.length - 1].stop];
}

// --- geometry ------------------------------------------------------------------------------

function checkDigitShape({ width, height }) {
  if (width > MAX_INK_WIDTH_RATIO * height) {
    throw new NoDigitError(
      `no digit found: the ink is ${width}x${height} px, ${pythonFixed(width / height, 0)} times wider than tall; ` +
        'a digit is at most about twice as wide as it is tall',
    );
  }
}

/** Mean stroke width: twice the area over the perimeter, at half intensity. */
export function strokeWidth({ data, width, height }) {
  // The image inside a frame of background, so that every pixel has a right and a lower neighbour.
  const w = width + 2;
  const inside = new Uint8Array(w * (height + 2));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) inside[(y + 1) * w + x + 1] = data[y * width + x] > 0.5 ? 1 : 0;
  let area = 0;
  let perimeter = 0;
  for (let y = 0; y <= height; y++) {
    for (let x = 0; x <= width; x++) {
      const i = y * w + x; // the pixel (x - 1, y - 1) of the image
      const here = inside[i];
      area += here;
      if (x >= 1 && here !== inside[i + w]) perimeter++;
      if (y >= 1 && here !== inside[i + 1]) perimeter++;
    }
  }
  return area === 0 ? 0 : (2 * area) / perimeter;
}

/** Reduce by `factor` keeping each block's maximum (zero-padded), so thin lines survive. */
function blockMax({ data, width, height }, factor) {
  const w = Math.ceil(width / factor);
  const h = Math.ceil(height / factor);
  const out = new Float32Array(w * h);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = Math.floor(y / factor) * w + Math.floor(x / factor);
      if (data[y * width + x] > out[i]) out[i] = data[y * width + x];
    }
  }
  return { data: out, width: w, height: h };
}

/** Grey dilation by an octagon: 3x3 squares alternating with 3x3 crosses; grows `radius` each side. */
function dilate(image, radius) {
  const width = image.width + 2 * radius;
  const height = image.height + 2 * radius;
  // Each step reads a copy framed by one more pixel of 0 on every side (outside the image is 0).
  const w = width + 2;
  let framed = new Float32Array(w * (height + 2));
  for (let y = 0; y < image.height; y++) framed.set(image.data.subarray(y * image.width, (y + 1) * image.width), (y + radius + 1) * w + radius + 1);
  let data = null;
  for (let step = 0; step < radius; step++) {
    const next = new Float32Array(w * (height + 2));
    for (let y = 1; y <= height; y++) {
      for (let x = 1; x <= width; x++) {
        const i = y * w + x;
        let m = Math.max(framed[i], framed[i - 1], framed[i + 1], framed[i - w], framed[i + w]);
        if (step % 2 === 0) m = Math.max(m, framed[i - w - 1], framed[i - w + 1], framed[i + w - 1], framed[i + w + 1]);
        next[i] = m;
      }
    }
    framed = next;
  }
  data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) data.set(framed.subarray((y + 1) * w + 1, (y + 1) * w + 1 + width), y * width);
  return { data, width, height };
}

/** Scale the crop so its longer side is `box`, keeping strokes MNIST-thick (Python's _fit_box). */
export function fitBox(crop, box) {
  const longer = Math.max(crop.width, crop.height);
  const factor = Math.floor(longer / (WORK_FACTOR * box));
  const measured = factor > 1 ? blockMax(crop, factor) : crop;
  const measuredLonger = Math.max(measured.width, measured.height);
  const stroke = strokeWidth(measured);
  let work = crop;
  if (longer > box && stroke / measuredLonger < MIN_STROKE / REFERENCE_BOX) {
    const share = TARGET_STROKE / REFERENCE_BOX;
    const grow = (share * measuredLonger - stroke) / (1 - share);
    work = dilate(measured, Math.ceil(grow / 2));
  } else if (factor > 1) {
    work = reduce(crop, factor);
  }
  const scale = box / Math.max(work.width, work.height);
  const width = Math.max(1, roundHalfEven(work.width * scale));
  const height = Math.max(1, roundHalfEven(work.height * scale));
  const resized = resize(work, width, height, LANCZOS);
  return { data: resized.data.map(clip01), width, height };
}

/** Place the digit in size x size with its centre of mass at the middle (integer shift, as MNIST). */
export function centre({ data, width, height }, size) {
  // The mass sums in float32 and numpy's order: a symmetric digit's centre falls on a half pixel,
  // and only the same rounding noise rounds it the same way.
  const total = pairwiseSum(data, 0, data.length);
  if (!(total > 0)) throw new NoDigitError('no digit found: the ink vanished when scaled to the box');
  const { rows: rowMass, cols: colMass } = sums({ data, width, height });
  let rows = 0;
  let cols = 0;
  for (let y = 0; y < height; y++) rows += rowMass[y] * y;
  for (let x = 0; x < width; x++) cols += colMass[x] * x;
  const middle = size / 2;
  const top = Math.min(Math.max(Math.floor(middle - rows / total + 0.5), 0), size - height);
  const left = Math.min(Math.max(Math.floor(middle - cols / total + 0.5), 0), size - width);
  const out = new Float32Array(size * size);
  for (let y = 0; y < height; y++) out.set(data.subarray(y * width, (y + 1) * width), (top + y) * size + left);
  return out;
}

// --- numbers, as numpy and Python compute them ----------------------------------------------

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy's float32 sums of an image: along rows (axis=1) pairwise, down columns (axis=0) in order. */
function sums({ data, width, height }) {
  const rows = new Float32Array(height);
  const cols = new Float32Array(width);
  for (let y = 0; y < height; y++) {
    rows[y] = pairwiseSum(data, y * width, width);
    for (let x = 0; x < width; x++) cols[x] = cols[x] + data[y * width + x];
  }
  return { rows, cols };
}

const PAIRWISE = new Float32Array(8);

/** numpy's pairwise summation of n float32 values from `start` (8 accumulators, blocks of 128). */
function pairwiseSum(data, start, n) {
  if (n < 8) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum = f32(sum + data[start + i]);
    return sum;
  }
  if (n <= 128) {
    const r = PAIRWISE;
    r.set(data.subarray(start, start + 8));
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let k = 0; k < 8; k++) r[k] += data[start + i + k]; // r is float32
    let sum = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
    for (; i < n; i++) sum = f32(sum + data[start + i]);
    return sum;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return f32(pairwiseSum(data, start, half) + pairwiseSum(data, start + half, n - half));
}

/** Python's f"{x:.{digits}f}": like toFixed, but an exact half goes to the even neighbour. */
function pythonFixed(x, digits) {
  const scaled = x * 10 ** digits;
  if (Math.abs(scaled % 1) === 0.5) return (roundHalfEven(scaled) / 10 ** digits).toFixed(digits);
  return x.toFixed(digits);
}

function clip01(v) {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function median(values) {
  // Every value here is a float32 (or an integer): selecting among float32 copies loses nothing.
  const a = values instanceof Float32Array ? values.slice() : Float32Array.from(values);
  const n = a.length;
  if (n === 0) return NaN;
  const mid = n >> 1;
  const upper = select(a, mid);
  if (n % 2) return upper;
  let lower = -Infinity; // the largest value left of `mid` after selection
  for (let i = 0; i < mid; i++) if (a[i] > lower) lower = a[i];
  return f32((lower + upper) / 2);
}

/** Quickselect: reorders `a` so that a[k] is the k-th smallest, smaller ones before it. */
function select(a, k) {
  let left = 0;
  let right = a.length - 1;
  while (left < right) {
    const pivot = a[(left + right) >> 1];
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else break;
  }
  return a[k];
}

/** Python's _percentile (numpy.percentile's linear method, in double precision); reorders `values`. */
export function percentile(values, q) {
  const n = values.length;
  const position = ((n - 1) * q) / 100;
  const below = Math.floor(position);
  const low = select(values, below); // the below-th smallest; larger values now follow it
  let high = low;
  if (below + 1 < n) {
    high = Infinity;
    for (let i = below + 1; i < n; i++) if (values[i] < high) high = values[i];
  }
  return low + (high - low) * (position - below);
}

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Minimum-norm least squares (numpy.linalg.lstsq's answer): the pseudo-inverse of the normal
 *  matrix from its eigen-decomposition (Jacobi), small singular values cut as lstsq does. */
function leastSquares(rows, targets) {
  const n = rows[0].length;
  const ata = Array.from({ length: n }, () => new Float64Array(n));
  const atb = new Float64Array(n);
  rows.forEach((row, k) => {
    for (let i = 0; i < n; i++) {
      atb[i] += row[i] * targets[k];
      for (let j = 0; j < n; j++) ata[i][j] += row[i] * row[j];
    }
  });
  const { values, vectors } = jacobiEigen(ata);
  const largest = Math.max(...values.map(Math.abs));
  // numpy's lstsq drops singular values under eps * max(m, n) * the largest. Forming AᵀA rounds a
  // null direction's eigenvalue up to about eps * largest (not its true s², ~0), so the cut-off is
  // taken on the eigenvalues at that scale: a design with dependent columns (a wide, short image
  // has two rows of cells, where 1, y and y² are dependent) gets lstsq's minimum-norm surface.
  const cutoff = Number.EPSILON * Math.max(rows.length, n) * largest;
  const coef = new Float64Array(n);
  for (let e = 0; e < n; e++) {
    if (values[e] <= cutoff) continue;
    let projection = 0;
    for (let i = 0; i < n; i++) projection += vectors[i][e] * atb[i];
    for (let i = 0; i < n; i++) coef[i] += (vectors[i][e] * projection) / values[e];
  }
  return Array.from(coef);
}

function jacobiEigen(matrix) {
  const n = matrix.length;
  const a = matrix.map((row) => Float64Array.from(row));
  const v = Array.from({ length: n }, (_, i) => Float64Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i][j] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p];
          const akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k];
          const aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: a.map((row, i) => row[i]), vectors: v };
}
