// The number reader in the page: the JavaScript port of the Python runtime's sequence reader
// (mnist_edge/runtime/sequence.py), kept equal to it by tests that read the same fields on both
// sides. An export may carry a sequence model (the manifest's `reader`) that reads a whole row of
// digits at once, for neighbours that touch or overlap:
//
//   the field's marks (js/number.js's fieldMarks: lines and specks removed) -> their ink, each
//   mark's pixels grown by one, cropped, scaled to `height` rows (Pillow's bilinear resize) and
//   padded -> the model: 11 probabilities per `stride` columns (10 digits and a blank) -> CTC's
//   best path: each column's best class, repeats merged, blanks dropped
//
// Each digit read is the run of columns that emitted it; its confidence is its class's
// probability at the run's best column (its peak), its top 3 the digits most probable there, and
// its box that of the marks it owns (`assign`), in input pixels. `combine` chooses between this
// reading and the digit-by-digit one (js/number.js's readNumber, "auto").
//
// Images here are {data: Float32Array, width, height}, row-major; masks hold 0/1 in a Uint8Array.

import { NoDigitError, roundHalfEven } from './preprocess.js';
import { BILINEAR, resize } from './resample.js';
import { TooManyDigitsError, grown } from './number.js';

/** The reader's geometry from the manifest's `reader` (or rules already taken from it). */
export function readerRules(reader) {
  if (!reader) throw new Error('no number reader: the manifest has no `reader`');
  const { height, pad, max_width, stride, blank } = reader;
  return { height, pad, max_width, stride, blank };
}

/**
 * The field read by the export's sequence model (Python's sequence.read_line).
 * @param {{run(x: Float32Array, height: number, width: number): Promise<{data: Float32Array, columns: number}>}} reader
 * @param {object} rules  readerRules(manifest.reader)
 * @param {object} field, pieces  js/number.js's fieldMarks
 * @returns {Promise<object>} a reading, as js/number.js's, with reader 'sequence'
 */
export async function readLine(reader, rules, field, pieces, spec, classNames, threshold) {
  const line = lineImage(field, pieces, rules);
  const input = modelInput(line, rules.stride);
  const { data, columns } = await reader.run(input.data, input.height, input.width);
  return lineReading(line, data, columns, field, pieces, spec, rules, classNames, threshold);
}

/** The marks' ink (each mark's pixels grown by one, to keep the soft edges), cropped to it,
 *  scaled to rules.height rows (at most rules.max_width columns in all) and padded with rules.pad
 *  empty columns either side (Python's line_image). Returns {image, left, top, inkWidth,
 *  inkHeight, width}: `width` the columns the crop was scaled to (the image's, less the padding). */
export function lineImage(field, pieces, rules) {
  const W = field.width;
  const H = field.height;
  let own = new Uint8Array(W * H);
  for (const p of pieces) {
    const pw = p.x1 - p.x0;
    for (let y = p.y0; y < p.y1; y++) for (let x = p.x0; x < p.x1; x++) own[y * W + x] |= p.pixels[(y - p.y0) * pw + x - p.x0];
  }
  own = grown(own, W, H);
  let left = W, top = H, right = -1, bottom = -1; // prettier-ignore
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!own[y * W + x]) continue;
      if (x < left) left = x;
      if (x > right) right = x;
      if (y < top) top = y;
      bottom = y;
    }
  }
  if (right < 0) throw new NoDigitError('no digit found: only specks and scraps of ink');
  const inkWidth = right - left + 1;
  const inkHeight = bottom - top + 1;
  const ink = new Float32Array(inkWidth * inkHeight);
  for (let y = 0; y < inkHeight; y++) {
    for (let x = 0; x < inkWidth; x++) {
      const i = (top + y) * W + left + x;
      ink[y * inkWidth + x] = own[i] ? field.ink.data[i] : 0;
    }
  }
  const { height, pad } = rules;
  const width = Math.min(Math.max(1, roundHalfEven((inkWidth * height) / inkHeight)), rules.max_width - 2 * pad);
  const scaled = resize({ data: ink, width: inkWidth, height: inkHeight }, width, height, BILINEAR);
  const full = width + 2 * pad;
  const data = new Float32Array(height * full);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data[y * full + pad + x] = Math.min(Math.max(scaled.data[y * width + x], 0), 1);
  }
  return { image: { data, width: full, height }, left, top, inkWidth, inkHeight, width };
}

/** The model's input [1, height, width, 1] (as {data, height, width}): the line image, its width
 *  padded with empty columns to a multiple of `stride` (Python's model_input). */
export function modelInput(line, stride) {
  const { data, width, height } = line.image;
  const padded = width + ((stride - (width % stride)) % stride);
  const out = new Float32Array(height * padded);
  for (let y = 0; y < height; y++) out.set(data.subarray(y * width, (y + 1) * width), y * padded);
  return { data: out, height, width: padded };
}

/** CTC's best path over `columns` rows of probabilities (row-major, `classes` each): each column's
 *  best class (the first, on ties), runs merged, blanks dropped. Each digit emitted keeps its run
 *  [start, stop) and its peak: the column of the run where its class is most probable (the first). */
export function bestPath(probabilities, columns, blank, classes = probabilities.length / Math.max(columns, 1)) {
  const best = new Int32Array(columns);
  for (let t = 0; t < columns; t++) {
    let k = 0;
    for (let c = 1; c < classes; c++) if (probabilities[t * classes + c] > probabilities[t * classes + k]) k = c;
    best[t] = k;
  }
  const out = [];
  let start = 0;
  for (let t = 1; t <= columns; t++) {
    if (t === columns || best[t] !== best[start]) {
      if (best[start] !== blank) {
        const digit = best[start];
        let peak = start;
        for (let u = start + 1; u < t; u++) if (probabilities[u * classes + digit] > probabilities[peak * classes + digit]) peak = u;
        out.push({ digit, start, stop: t, peak });
      }
      start = t;
    }
  }
  return out;
}

/** The reading of the model's probabilities [columns, classes] for `line` (the rest of Python's read_line). */
export function lineReading(line, probabilities, columns, field, pieces, spec, rules, classNames, threshold) {
  const classes = probabilities.length / Math.max(columns, 1);
  const emitted = bestPath(probabilities, columns, rules.blank, classes);
  if (emitted.length === 0) throw new NoDigitError('no digit found: the marks do not read as digits');
  if (emitted.length > spec.max_digits) {
    throw new TooManyDigitsError(`too many digits: read ${emitted.length}, a number has at most ${spec.max_digits}`);
  }
  // Each peak's column in the working field (the same order of operations as Python's).
  const peaks = emitted.map((e) => line.left + (((e.peak + 0.5) * rules.stride - rules.pad) * line.inkWidth) / line.width);
  const owned = assign(pieces, peaks);
  const digits = emitted.map((e, k) =>
    lineDigit(probabilities.subarray(e.peak * classes, (e.peak + 1) * classes), line, field, owned[k], rules, classNames),
  );
  let confidence = 1;
  for (const d of digits) confidence *= d.confidence;
  return { text: digits.map((d) => d.label).join(''), confidence, rejected: confidence < threshold, digits, reader: 'sequence' };
}

/** Each digit's box ([x0, y0, x1, y1] in working pixels, or null) from the marks it owns (Python's
 *  _assign). A mark under one digit's peak column goes to that digit; a mark under none (a 5's
 *  flag, a 4's second stroke) to the last digit whose peak is left of its right end; a mark under
 *  several (neighbours that touch) is split between them at the column of least ink between each
 *  two peaks. */
export function assign(pieces, peaks) {
  const boxes = peaks.map(() => null);
  const own = (k, x0, y0, x1, y1) => {
    const box = boxes[k];
    boxes[k] = box === null ? [x0, y0, x1, y1] : [Math.min(box[0], x0), Math.min(box[1], y0), Math.max(box[2], x1), Math.max(box[3], y1)];
  };
  for (const piece of pieces) {
    const under = [];
    peaks.forEach((c, k) => {
      if (piece.x0 <= c && c < piece.x1) under.push(k);
    });
    if (under.length <= 1) {
      let k = 0;
      if (under.length) k = under[0];
      else peaks.forEach((c, j) => (k = c < piece.x1 ? Math.max(k, j) : k));
      own(k, piece.x0, piece.y0, piece.x1, piece.y1);
      continue;
    }
    const pw = piece.x1 - piece.x0;
    const rows = piece.y1 - piece.y0;
    const columns = new Int32Array(pw);
    for (let y = 0; y < rows; y++) for (let x = 0; x < pw; x++) columns[x] += piece.pixels[y * pw + x];
    const cuts = [0];
    for (let n = 1; n < under.length; n++) cuts.push(cut(columns, peaks[under[n - 1]] - piece.x0, peaks[under[n]] - piece.x0));
    cuts.push(pw);
    under.forEach((k, n) => {
      const a = cuts[n];
      const b = cuts[n + 1];
      let c0 = Infinity, c1 = -1, r0 = Infinity, r1 = -1; // prettier-ignore
      for (let y = 0; y < rows; y++) {
        for (let x = Math.max(a, 0); x < Math.min(b, pw); x++) {
          if (!piece.pixels[y * pw + x]) continue;
          if (x < c0) c0 = x;
          if (x > c1) c1 = x;
          if (y < r0) r0 = y;
          r1 = y;
        }
      }
      if (c1 >= 0) own(k, piece.x0 + c0, piece.y0 + r0, piece.x0 + c1 + 1, piece.y0 + r1 + 1);
    });
  }
  return boxes;
}

/** Where to part two touching digits (Python's _cut): the column of least ink in the right half
 *  between their peaks (the rightmost of equals), as the first column of the right-hand digit. */
export function cut(columns, left, right) {
  const start = Math.floor((left + right) / 2) + 1;
  const stop = Math.ceil(right);
  if (stop <= start) return Math.max(0, Math.min(columns.length, roundHalfEven((left + right) / 2)));
  let best = stop - 1;
  for (let x = stop - 2; x >= start; x--) if (columns[x] < columns[best]) best = x;
  return best;
}

/** The digit read at one column (Python's _digit): class, confidence and top 3 among the digit
 *  classes there; its box (input pixels) that of the marks it owns, and its picture the line
 *  image's columns under them. */
function lineDigit(scores, line, field, box, rules, classNames) {
  const digits = scores.subarray(0, rules.blank);
  const order = Array.from(digits.keys()).sort((a, b) => digits[b] - digits[a] || a - b); // numpy's stable argsort(-p)
  const best = order[0];
  const [x0, y0, x1, y1] = box ?? [line.left, line.top, line.left + 1, line.top + line.inkHeight];
  const [top, left] = field.origin;
  const shown = [
    Math.floor(left + x0 * field.scale), Math.floor(top + y0 * field.scale),
    Math.ceil(left + x1 * field.scale), Math.ceil(top + y1 * field.scale),
  ];
  const { data, width, height } = line.image;
  const scale = line.width / line.inkWidth;
  const c0 = Math.max(0, Math.floor(rules.pad + (x0 - line.left) * scale));
  const c1 = Math.max(c0 + 1, Math.min(width, Math.ceil(rules.pad + (x1 - line.left) * scale)));
  const columns = Math.max(0, Math.min(c1, width) - c0); // numpy's image[:, c0:c1]
  const input = new Float32Array(height * columns);
  for (let y = 0; y < height; y++) input.set(data.subarray(y * width + c0, y * width + c0 + columns), y * columns);
  return {
    digit: best, label: classNames[best], confidence: digits[best],
    top: order.slice(0, 3).map((c) => [classNames[c], digits[c]]), box: shown, input, inputWidth: columns, inputHeight: height,
  };
}

/** What "auto" answers when both readers read the field (Python's sequence.combine): when they
 *  read as many digits, the more confident reading (the digit-by-digit one on a tie); otherwise
 *  the sequence model's. */
export function combine(digits, line) {
  return [...digits.text].length === [...line.text].length && digits.confidence >= line.confidence ? digits : line;
}
