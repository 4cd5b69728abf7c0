// Reading a whole number (one row of 1 to 12 digits) with the single-digit model: the JavaScript
// port of the recipe in docs/reading.md, kept equal to the Python runtime (mnist_edge/runtime/
// number.py) by tests that run both on the same fields. Every constant comes from the same
// number_spec.json (`spec` below); the single-digit steps are preprocess.js's own.
//
//   pixels -> ink (as to_mnist) -> working scale -> mask -> lines removed -> components -> specks
//   dropped -> atoms (wide components cut along cheap paths) -> candidate digits -> each to 28x28,
//   one batch through the model -> the best segmentation of the row by dynamic programming
//
// When the export carries a number reader (a sequence model, js/sequence.js), readNumber reads the
// field's marks with it too and keeps one of the two readings as Python's "auto" does.
//
// Images here are {data, width, height}, row-major; masks hold 0/1 in a Uint8Array.

import { NoDigitError, INK_PEAK_PERCENTILE, centre, fitBox, greyAndAlpha, inkWindow, percentile, roundHalfEven, strokeWidth } from './preprocess.js';
import { reduce } from './resample.js';
import { combine, readerRules, readLine } from './sequence.js';

const f32 = Math.fround;
const WORK_SIDE = 1000; // Python's preprocess.WORK_SIDE: larger images are reduced there first

export class TooManyDigitsError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TooManyDigitsError';
  }
}

/** Which reader reads a number (Python's runtime/reading.py READERS): both combined, or one of them alone. */
export const READERS = ['auto', 'digits', 'sequence'];

/** A field refused by a reader (no digit, too many): what "auto" catches from one of its two readers. */
function refused(error) {
  return error instanceof NoDigitError || error instanceof TooManyDigitsError;
}

/**
 * Read the row of digits on canvas pixels.
 * @param {{data: Uint8ClampedArray, width: number, height: number}} pixels  RGBA
 * @param {{manifest: object, classNames: string[], run: Function}} model  infer.js's Model
 * @param {object} spec  number_spec.json
 * @param {object} options
 *   minConfidence: below it a reading is rejected (default spec.min_confidence);
 *   reader: the export's number reader (js/sequence.js), or null: {run(x, height, width) ->
 *     Promise<{data, columns}>, rules?}; its geometry is `rules`, else the manifest's `reader`;
 *   mode: 'auto' (both readers combined as Python's sequence.combine, digit by digit when there is
 *     no reader), 'digits' or 'sequence' (the `reader` argument of Python's reading.read).
 * @returns {Promise<object>} {text, confidence, rejected, reader: 'digits' | 'sequence',
 *   digits: [{digit, label, confidence, top, box, input, inputWidth, inputHeight}], timing}
 */
export async function readNumber(pixels, model, spec, { minConfidence = null, reader = null, mode = 'auto' } = {}) {
  // The order of Python's runtime/reading.py's `read`, so that a field is refused with the same message.
  if (!READERS.includes(mode)) throw new Error(`reader must be one of ${READERS.join(', ')}, got '${mode}'`);
  if (mode === 'sequence' && !reader) throw new Error("this export has no number reader; read with reader='digits' or 'auto'");
  const t0 = performance.now();
  const marks = fieldMarks(pixels, spec);
  const timing = { segment: performance.now() - t0, inference: 0, choose: 0 };
  const threshold = minConfidence ?? spec.min_confidence;
  const rules = reader ? readerRules(reader.rules ?? model.manifest.reader) : null;
  if (mode === 'sequence') return withTiming(await timed(() => readLine(reader, rules, marks.field, marks.pieces, spec, model.classNames, threshold), timing), timing);
  const geometry = digitGeometry(model.manifest.input);
  if (mode === 'digits' || !reader) return withTiming(await readDigits(marks, model, spec, geometry, threshold, timing), timing);
  let line = null;
  try {
    line = await timed(() => readLine(reader, rules, marks.field, marks.pieces, spec, model.classNames, threshold), timing);
  } catch (error) {
    if (!refused(error)) throw error; // no digit emitted, or too many: the digit-by-digit reading (or its error) stands
  }
  let digits;
  try {
    digits = await readDigits(marks, model, spec, geometry, threshold, timing);
  } catch (error) {
    if (line === null || !refused(error)) throw error; // too crowded to cut, or only scraps: the line reading stands
    return withTiming(line, timing);
  }
  return withTiming(line === null ? digits : combine(digits, line), timing);
}

/** read(), its time added to timing.sequence (ms), whether it reads or refuses the field. */
async function timed(read, timing) {
  const t0 = performance.now();
  try {
    return await read();
  } finally {
    timing.sequence = (timing.sequence ?? 0) + performance.now() - t0;
  }
}

function withTiming(reading, timing) {
  reading.timing = timing;
  return reading;
}

/** Steps 8-13 on the field's marks: candidate digits, one batch through the model, the best
 *  segmentation (Python's read_digits). Adds its steps' times to `timing`. */
async function readDigits(marks, model, spec, geometry, threshold, timing) {
  const t0 = performance.now();
  const found = segmentMarks(marks, spec, geometry);
  const t1 = performance.now();
  const probabilities = await model.run(found.batch, found.spans.length);
  const t2 = performance.now();
  const reading = choose(found, probabilities, model.classNames, spec, threshold);
  timing.segment += t1 - t0;
  timing.inference = t2 - t1;
  timing.choose = performance.now() - t2;
  return reading;
}

/** The model's input size and digit box, as prepare() takes them. */
export function digitGeometry(input) {
  const [, height, width] = input.shape;
  const { kind, box } = input.preprocessing;
  if (kind !== 'digit' || height !== width) {
    throw new Error(`reading numbers needs a model of centred digits (preprocessing 'digit'), this one uses '${kind}'`);
  }
  return { size: height, box: box || Math.round((height * 20) / 28) };
}

/** Steps 1-10: the atoms, the candidate digits and their model inputs (one Float32Array batch). */
export function segment(pixels, spec, geometry = {}) {
  return segmentMarks(fieldMarks(pixels, spec), spec, geometry);
}

/** Steps 1-7 (Python's field_marks, and read_number's count of marks): the field (its mask
 *  without lines), a comb's dividers, the marks (components without specks), the digit height. */
export function fieldMarks(pixels, spec) {
  const field = fieldInk(pixels, spec);
  const { removed, vertical } = linePixels(field.ink, field.mask, spec);
  field.mask = without(field.mask, removed);
  const dividers = combDividers(vertical, field.width, field.height);
  let pieces = componentPieces(field.mask, field.width, field.height);
  if (pieces.length === 0) throw new NoDigitError('no digit found: the image holds only lines');
  const height = digitHeight(pieces, spec);
  pieces = withoutSpecks(pieces, height, spec);
  if (pieces.length > spec.max_marks) {
    throw new TooManyDigitsError(`too many digits: ${pieces.length} separate marks, a number has at most ${spec.max_digits} digits`);
  }
  return { field, dividers, pieces, height };
}

/** Steps 8-10 on the field's marks: the atoms, the candidate digits and their model inputs. */
export function segmentMarks({ field, dividers, pieces, height }, spec, { size = 28, box = 20 } = {}) {
  const parts = atoms(pieces, height, spec);
  const spans = candidates(parts, height, spec);
  if (spans.length > spec.max_candidates) {
    throw new TooManyDigitsError(`too many digits: the ink is too crowded to read as at most ${spec.max_digits} digits`);
  }
  const batch = new Float32Array(spans.length * size * size);
  spans.forEach(([i, j], k) => batch.set(toInput(crop(field, parts.slice(i, j), spec.crop_dilation), size, box), k * size * size));
  return { field, pieces, parts, spans, height, batch, size, dividers };
}

/** Steps 11-13: score the candidates by the model's probabilities and choose the best reading. */
export function choose(found, probabilities, classNames, spec, minConfidence = null) {
  const { field, pieces, parts, spans, height, batch, size, dividers } = found;
  const classes = classNames.length;
  const rowOf = (k) => probabilities.subarray(k * classes, (k + 1) * classes);
  const band = rowBand(pieces);
  const scored = new Map();
  spans.forEach(([i, j], k) => {
    const cells = (spec.segment.cell_penalty ?? 0) * sharedCells(parts, i, j, dividers ?? []);
    scored.set(`${i},${j}`, candidateScore(parts.slice(i, j), rowOf(k), height, spec, band) - cells);
  });
  const maskFloats = Float32Array.from(field.mask);
  const stroke = strokeWidth({ data: maskFloats, width: field.width, height: field.height });
  const skips = parts.map((p) => skipCost(p, height, spec));
  const chosen = bestSegmentation(parts.length, scored, skips, cutCosts(parts, stroke, spec));
  if (chosen.length === 0) throw new NoDigitError('no digit found: only specks and scraps of ink');
  if (chosen.length > spec.max_digits) {
    throw new TooManyDigitsError(`too many digits: read ${chosen.length}, a number has at most ${spec.max_digits}`);
  }
  const index = new Map(spans.map(([i, j], k) => [`${i},${j}`, k]));
  const digits = chosen.map(([i, j]) => {
    const k = index.get(`${i},${j}`);
    return readDigit(rowOf(k), classNames, batch.subarray(k * size * size, (k + 1) * size * size), field, parts.slice(i, j));
  });
  let confidence = 1;
  for (const d of digits) confidence *= d.confidence;
  const threshold = minConfidence ?? spec.min_confidence;
  return { text: digits.map((d) => d.label).join(''), confidence, rejected: confidence < threshold, digits, reader: 'digits' };
}

function readDigit(probabilities, classNames, input, field, parts) {
  const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  const [x0, y0, x1, y1] = bounds(parts);
  const [top, left] = field.origin;
  const box = [
    Math.floor(left + x0 * field.scale), Math.floor(top + y0 * field.scale),
    Math.ceil(left + x1 * field.scale), Math.ceil(top + y1 * field.scale),
  ];
  const best = order[0];
  return {
    digit: best, label: classNames[best], confidence: probabilities[best],
    top: order.slice(0, 3).map((c) => [classNames[c], probabilities[c]]), box, input: Float32Array.from(input),
    inputWidth: Math.round(Math.sqrt(input.length)), inputHeight: Math.round(Math.sqrt(input.length)),
  };
}

// --- the field: ink, working scale, mask -----------------------------------------------------

/** Steps 1-4: the ink at the working scale (peak to 1) and its mask (lines not yet removed). */
export function fieldInk(pixels, spec) {
  if (Math.max(pixels.width, pixels.height) >= 2 * WORK_SIDE) {
    throw new Error(`the image is ${pixels.width}x${pixels.height} px; the page reads numbers on images under ${2 * WORK_SIDE} px a side`);
  }
  const { grey, alpha } = greyAndAlpha(pixels);
  const window = inkWindow(grey, alpha, pixels.width, pixels.height);
  const factor = Math.max(1, roundHalfEven(window.height / spec.work_height));
  const ink = factor > 1 ? reduce(window, factor) : window;
  const positive = positives(ink.data);
  if (positive.length === 0) throw new NoDigitError('no digit found: the image is blank');
  const scale = f32(1 / percentile(positive, INK_PEAK_PERCENTILE));
  const data = new Float32Array(ink.data.length);
  const mask = new Uint8Array(ink.data.length);
  for (let i = 0; i < data.length; i++) {
    data[i] = Math.min(f32(ink.data[i] * scale), 1);
    mask[i] = data[i] >= spec.mask_threshold ? 1 : 0;
  }
  const { width, height } = ink;
  return { ink: { data, width, height }, mask, width, height, scale: factor, origin: [window.top, window.left] };
}

// --- masks ---------------------------------------------------------------------------------

function transpose(mask, width, height) {
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[x * height + y] = mask[y * width + x];
  return out;
}

/** Horizontal runs of 1s: [{row, start, stop}], row-major, stop exclusive. */
function runs(mask, width, height) {
  const out = [];
  for (let y = 0; y < height; y++) {
    let x = 0;
    while (x < width) {
      if (!mask[y * width + x]) {
        x++;
        continue;
      }
      const start = x;
      while (x < width && mask[y * width + x]) x++;
      out.push({ row: y, start, stop: x });
    }
  }
  return out;
}

/** The pixels of `mask` in horizontal runs at least `minLength` long. */
function longRuns(mask, width, height, minLength) {
  const out = new Uint8Array(mask.length);
  for (const { row, start, stop } of runs(mask, width, height)) if (stop - start >= minLength) out.fill(1, row * width + start, row * width + stop);
  return out;
}

/** `mask` with horizontal gaps of up to `gap` pixels between ink filled (Python's _bridged). */
function bridged(mask, width, height, gap) {
  const out = mask.slice();
  for (let size = 1; size <= gap; size++) {
    for (let offset = 0; offset < size; offset++) {
      for (let y = 0; y < height; y++) {
        const row = y * width;
        for (let k = 0; k + size + 1 < width; k++) if (mask[row + k] && mask[row + k + size + 1]) out[row + k + offset + 1] = 1;
      }
    }
  }
  return out;
}

/** Line pixels a stroke crosses: stroke ink directly above and below the line's thickness. */
function crossings(line, strokes, width, height) {
  const above = new Uint8Array(line.length);
  const below = new Uint8Array(line.length);
  for (let y = 1; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      above[i] = line[i] & (strokes[i - width] | above[i - width]);
    }
  }
  for (let y = height - 2; y >= 0; y--) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      below[i] = line[i] & (strokes[i + width] | below[i + width]);
    }
  }
  for (let i = 0; i < above.length; i++) above[i] &= below[i];
  return above;
}

/** `mask` grown `depth` rows up and down. */
function spread(mask, width, height, depth) {
  const out = mask.slice();
  for (let step = 1; step <= depth; step++) {
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      if (i + step * width < mask.length) out[i + step * width] = 1;
      if (i - step * width >= 0) out[i - step * width] = 1;
    }
  }
  return out;
}

/** Step 5: the mask without ruled lines, box borders and comb dividers (Python's remove_lines). */
export function removeLines(ink, mask, spec) {
  return without(mask, linePixels(ink, mask, spec).removed);
}

/** The x of each divider of a comb (the centre of each run of divider columns), or none when the
 * form is not a comb: at least three (two sides and one divider). Python's comb_dividers. */
function combDividers(vertical, width, height) {
  const centres = [];
  let first = -1;
  for (let x = 0; x <= width; x++) {
    let any = false;
    for (let y = 0; x < width && y < height && !any; y++) any = vertical[y * width + x] === 1;
    if (any && first < 0) first = x;
    if (!any && first >= 0) {
      centres.push((first + x - 1) / 2);
      first = -1;
    }
  }
  return centres.length >= 3 ? centres : [];
}

/** How many of the atoms just before and after parts[start:stop] have their centre in the same
 * comb cell as the candidate's centre (Python's shared_cells). */
function sharedCells(parts, start, stop, dividers) {
  if (dividers.length === 0) return 0;
  const cellOf = (x) => dividers.filter((d) => d < x).length;
  let x0 = Infinity;
  let x1 = -Infinity;
  for (let k = start; k < stop; k++) {
    x0 = Math.min(x0, parts[k].x0);
    x1 = Math.max(x1, parts[k].x1);
  }
  const cell = cellOf((x0 + x1) / 2);
  let count = 0;
  for (const k of [start - 1, stop]) if (k >= 0 && k < parts.length && cellOf((parts[k].x0 + parts[k].x1) / 2) === cell) count++;
  return count;
}

/** The pixels removeLines takes out of the mask, and the dividers and box sides among them. */
function linePixels(ink, mask, spec) {
  const rules = spec.line;
  const { width, height } = ink;
  const faintMask = new Uint8Array(ink.data.length);
  for (let i = 0; i < faintMask.length; i++) faintMask[i] = ink.data[i] >= rules.threshold ? 1 : 0;
  const across = bridged(faintMask, width, height, rules.bridge);
  const downT = bridged(transpose(faintMask, width, height), height, width, rules.bridge); // columns as rows
  const down = transpose(downT, height, width);
  const wide = longRuns(across, width, height, rules.min_field_fraction * width);
  const tall = transpose(longRuns(downT, height, width, rules.vertical_min_field_fraction * height), height, width);
  let first = -1;
  let last = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (mask[i] && !wide[i] && !tall[i]) {
        if (first < 0) first = y;
        last = y;
        break;
      }
    }
  }
  const digitRows = first >= 0 ? last - first + 1 : height;
  const lines = longRuns(across, width, height, Math.max(rules.min_field_fraction * width, rules.min_heights * digitRows));
  const crossed = crossings(lines, without(mask, lines), width, height);
  const horizontal = without(lines, crossed);
  // A divider is told by the lines it joins, crossings included (where a divider meets a line,
  // the line's pixels are "crossed" by the divider itself).
  const vertical = dividers(without(down, horizontal), lines, width, height, rules);
  const strokesT = transpose(without(mask, vertical, horizontal), width, height);
  const crossedV = transpose(crossings(transpose(vertical, width, height), strokesT, height, width), height, width);
  for (let i = 0; i < vertical.length; i++) vertical[i] &= 1 - crossedV[i];
  const edgeH = spread(horizontal, width, height, rules.edge);
  const edgeV = transpose(spread(transpose(vertical, width, height), height, width, rules.edge), height, width);
  const removed = horizontal.slice();
  for (let i = 0; i < removed.length; i++) removed[i] |= vertical[i] | edgeH[i] | edgeV[i];
  return { removed, vertical };
}

/** The 1s of `mask` where none of the other masks has a 1 (masks of 0/1, the same size). */
function without(mask, ...others) {
  const out = mask.slice();
  for (const other of others) for (let i = 0; i < out.length; i++) out[i] &= 1 - other[i];
  return out;
}

/** Vertical runs joining a horizontal line above to one below (Python's _dividers). */
function dividers(mask, horizontal, width, height, rules) {
  const out = new Uint8Array(mask.length);
  if (!horizontal.some((v) => v)) return out;
  const joined = mask.slice();
  for (let i = 0; i < joined.length; i++) joined[i] |= horizontal[i];
  const either = transpose(joined, width, height);
  const reach = rules.divider_reach;
  const lineAt = (col, from, to) => {
    for (let y = from; y < Math.min(to, height); y++) if (horizontal[y * width + col]) return true;
    return false;
  };
  for (const { row: col, start, stop } of runs(either, height, width)) {
    if (stop - start < rules.vertical_min_field_fraction * height) continue;
    if (lineAt(col, start, start + reach) && lineAt(col, Math.max(start, stop - reach), stop)) {
      for (let y = start; y < stop; y++) out[y * width + col] = mask[y * width + col];
    }
  }
  return out;
}

// --- components, pieces, specks ----------------------------------------------------------------

/** Step 6: the 8-connected components as pieces, numbered by their first pixel in raster order. */
export function componentPieces(mask, width, height) {
  const list = runs(mask, width, height);
  const parent = list.map((_, i) => i);
  const find = (i) => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  let next = 0; // the first run of the row below
  for (let i = 0; i < list.length; i++) {
    const { row, start, stop } = list[i];
    while (next < list.length && list[next].row <= row) next++;
    for (let k = next; k < list.length && list[k].row === row + 1; k++) {
      if (list[k].start <= stop && list[k].stop >= start) {
        const a = find(i);
        const b = find(k);
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
    }
  }
  const groups = new Map(); // root run -> its runs, in order of the root (its first run)
  list.forEach((run, i) => {
    const root = find(i);
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root).push(run);
  });
  return [...groups.keys()].sort((a, b) => a - b).map((root, n) => pieceOfRuns(n + 1, groups.get(root)));
}

function pieceOfRuns(label, list) {
  let x0 = Infinity, y0 = Infinity, x1 = 0, y1 = 0; // prettier-ignore
  for (const { row, start, stop } of list) {
    x0 = Math.min(x0, start);
    x1 = Math.max(x1, stop);
    y0 = Math.min(y0, row);
    y1 = Math.max(y1, row + 1);
  }
  const w = x1 - x0;
  const pixels = new Uint8Array(w * (y1 - y0));
  let area = 0;
  for (const { row, start, stop } of list) {
    pixels.fill(1, (row - y0) * w + start - x0, (row - y0) * w + stop - x0);
    area += stop - start;
  }
  return { label, x0, y0, x1, y1, area, pixels, cutInk: 0, whole: 0 };
}

/** The piece holding the 1s of `own` (w x h, at top, left), or null if there are none. */
function pieceOf(label, own, w, h, top, left, cutInk) {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1; // prettier-ignore
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!own[y * w + x]) continue;
      if (x < x0) x0 = x;
      if (x >= x1) x1 = x + 1;
      if (y < y0) y0 = y;
      y1 = y + 1;
    }
  }
  if (x1 < 0) return null;
  const pw = x1 - x0;
  const pixels = new Uint8Array(pw * (y1 - y0));
  let area = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      pixels[(y - y0) * pw + x - x0] = own[y * w + x];
      area += own[y * w + x];
    }
  }
  return { label, x0: left + x0, y0: top + y0, x1: left + x1, y1: top + y1, area, pixels, cutInk, whole: 0 };
}

export function digitHeight(pieces, spec) {
  const largest = Math.max(...pieces.map((p) => p.area));
  return Math.max(...pieces.filter((p) => p.area >= spec.digit_height.min_area_share * largest).map((p) => p.y1 - p.y0));
}

export function withoutSpecks(pieces, height, spec) {
  const rules = spec.speck;
  return pieces.filter((p) => p.area >= rules.max_area_heights2 * height * height || Math.max(p.x1 - p.x0, p.y1 - p.y0) >= rules.max_side_heights * height);
}

// --- atoms -----------------------------------------------------------------------------------

/** Step 8: the components in reading order, each wide one cut along its cut paths. */
export function atoms(pieces, height, spec) {
  const out = [];
  for (const piece of pieces) {
    const rows = piece.y1 - piece.y0;
    const width = piece.x1 - piece.x0;
    let left = new Int32Array(rows);
    let crossed = 0;
    const paths = [...cutPaths(piece.pixels, width, rows, height, spec), [new Int32Array(rows).fill(width), 0]];
    for (const [path, ink] of paths) {
      const part = new Uint8Array(piece.pixels.length);
      for (let y = 0; y < rows; y++) for (let x = left[y]; x < Math.min(path[y], width); x++) part[y * width + x] = piece.pixels[y * width + x];
      const found = pieceOf(piece.label, part, width, rows, piece.y0, piece.x0, crossed);
      if (found) {
        if (paths.length > 1) found.whole = width; // a piece of a cut component: that component's width
        out.push(found);
      }
      left = path;
      crossed = ink;
    }
  }
  return out.sort((a, b) => a.x0 + a.x1 - (b.x0 + b.x1) || a.y0 - b.y0);
}

/** Candidate cut paths through a wide component: [[column per row (Int32Array), ink crossed]]. */
export function cutPaths(own, width, rows, height, spec) {
  const rules = spec.cut;
  if (width < rules.min_width_heights * height) return [];
  const margin = Math.max(1, roundHalfEven(rules.margin_heights * height));
  const wide = width >= (rules.close_min_width_heights ?? Infinity) * height; // surely two digits or more
  const spacing = Math.max(1, roundHalfEven((wide ? rules.close_spacing_heights : rules.spacing_heights) * height));
  const found = [];
  for (const flip of [false, true]) {
    const cost = (y, x) => own[(flip ? rows - 1 - y : y) * width + x];
    const { total, moves } = pathCosts(cost, rows, width, rules.sideways_cost);
    for (let end = margin; end < width - margin; end++) {
      if (!(total[end] <= total[end - 1] && total[end] <= total[end + 1])) continue;
      const path = traced(moves, rows, width, end);
      found.push({ total: total[end], path: flip ? path.reverse() : path });
    }
  }
  const sum = (path) => path.reduce((a, b) => a + b, 0);
  found.sort((a, b) => a.total - b.total || sum(a.path) - sum(b.path));
  const meanDistance = (a, b) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
  const chosen = [];
  for (const { path } of found) if (chosen.every((other) => meanDistance(path, other) >= spacing)) chosen.push(path);
  chosen.sort((a, b) => sum(a) / a.length - sum(b) / b.length);
  const paths = [];
  for (let path of chosen) {
    if (paths.length) {
      const before = paths[paths.length - 1][0];
      path = path.map((v, y) => Math.max(v, before[y]));
    }
    let ink = 0;
    for (let y = 0; y < rows; y++) ink += own[y * width + Math.min(path[y], width - 1)];
    paths.push([path, ink]);
  }
  return paths;
}

/** Least total cost of a top-to-bottom path ending at each bottom column, and the moves. */
function pathCosts(cost, rows, width, sideways) {
  let total = new Float64Array(width);
  for (let x = 0; x < width; x++) total[x] = cost(0, x);
  const moves = new Int8Array(rows * width);
  for (let y = 1; y < rows; y++) {
    const next = new Float64Array(width);
    for (let x = 0; x < width; x++) {
      let best = x > 0 ? total[x - 1] + sideways : Infinity;
      let move = -1;
      if (total[x] < best) {
        best = total[x];
        move = 0;
      }
      if (x + 1 < width && total[x + 1] + sideways < best) {
        best = total[x + 1] + sideways;
        move = 1;
      }
      next[x] = best + cost(y, x);
      moves[y * width + x] = move;
    }
    total = next;
  }
  return { total, moves };
}

function traced(moves, rows, width, end) {
  const path = new Int32Array(rows);
  path[rows - 1] = end;
  for (let y = rows - 1; y > 0; y--) path[y - 1] = path[y] + moves[y * width + path[y]];
  return path;
}

// --- candidates, crops, scores, the best segmentation ----------------------------------------

/** Step 9: runs of neighbouring atoms [i, j) that may be one digit. */
export function candidates(parts, height, spec) {
  const rules = spec.segment;
  const found = [];
  for (let i = 0; i < parts.length; i++) {
    let right = parts[i].x1;
    let x0 = parts[i].x0;
    for (let j = i + 1; j <= Math.min(parts.length, i + rules.max_atoms); j++) {
      if (j > i + 1) {
        const gap = parts[j - 1].x0 - right;
        if (gap > rules.merge_gap_heights * height) break;
        right = Math.max(right, parts[j - 1].x1);
        x0 = Math.min(x0, parts[j - 1].x0);
        if (right - x0 > rules.max_width_heights * height) break;
      }
      found.push([i, j]);
    }
  }
  return found;
}

export function bounds(parts) {
  return [Math.min(...parts.map((p) => p.x0)), Math.min(...parts.map((p) => p.y0)), Math.max(...parts.map((p) => p.x1)), Math.max(...parts.map((p) => p.y1))];
}

/** Step 10: the ink of these pieces only (grown by `dilation`), cropped to it. */
export function crop(field, parts, dilation) {
  const [x0, y0, x1, y1] = bounds(parts);
  const { width, height, data } = field.ink;
  const top = Math.max(0, y0 - dilation);
  const left = Math.max(0, x0 - dilation);
  const w = Math.min(width, x1 + dilation) - left;
  const h = Math.min(height, y1 + dilation) - top;
  let own = new Uint8Array(w * h);
  for (const p of parts) {
    const pw = p.x1 - p.x0;
    for (let y = p.y0; y < p.y1; y++) for (let x = p.x0; x < p.x1; x++) own[(y - top) * w + x - left] |= p.pixels[(y - p.y0) * pw + x - p.x0];
  }
  for (let step = 0; step < dilation; step++) own = grown(own, w, h);
  const ink = new Float32Array(w * h);
  let bx0 = w, by0 = h, bx1 = 0, by1 = 0; // prettier-ignore
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = own[y * w + x] ? data[(top + y) * width + left + x] : 0;
      ink[y * w + x] = v;
      if (v > 0) {
        bx0 = Math.min(bx0, x);
        bx1 = Math.max(bx1, x + 1);
        by0 = Math.min(by0, y);
        by1 = y + 1;
      }
    }
  }
  const cw = bx1 - bx0;
  const out = new Float32Array(cw * (by1 - by0));
  for (let y = by0; y < by1; y++) out.set(ink.subarray(y * w + bx0, y * w + bx1), (y - by0) * cw);
  return { data: out, width: cw, height: by1 - by0 };
}

/** `mask` (w x h, 0/1) dilated by one pixel (3x3): Python's number._grown. */
export function grown(mask, w, h) {
  const rows = mask.slice();
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    if (i >= w) rows[i - w] = 1;
    if (i + w < mask.length) rows[i + w] = 1;
  }
  const out = rows.slice();
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!rows[y * w + x]) continue;
      if (x > 0) out[y * w + x - 1] = 1;
      if (x + 1 < w) out[y * w + x + 1] = 1;
    }
  }
  return out;
}

/** One candidate's cropped ink as the model's input: the to_mnist geometry. */
export function toInput(ink, size, box) {
  const scale = f32(1 / percentile(positives(ink.data), INK_PEAK_PERCENTILE));
  const data = new Float32Array(ink.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.min(f32(ink.data[i] * scale), 1);
  return centre(fitBox({ data, width: ink.width, height: ink.height }, box), size);
}

/** The values above 0, in order (a typed array's filter, without a call per value). */
function positives(values) {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > 0) count++;
  const out = new Float32Array(count);
  for (let i = 0, k = 0; i < values.length; i++) if (values[i] > 0) out[k++] = values[i];
  return out;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  return (sorted[(n - 1) >> 1] + sorted[n >> 1]) / 2;
}

function rowBand(pieces) {
  return [median(pieces.map((p) => p.y0)), median(pieces.map((p) => p.y1))];
}

/** The index of the largest value (the first, on ties: numpy's argmax). */
function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Step 11: log P(digit) with the shape's priors and the fitted terms (Python's candidate_score);
 *  `probabilities`: the model's answer for the candidate. */
export function candidateScore(parts, probabilities, height, spec, band = null) {
  const rules = spec.segment;
  const digit = argmax(probabilities);
  const probability = probabilities[digit];
  let second = 0; // the second of the sorted probabilities (a tie with the best counts)
  for (let c = 0; c < probabilities.length; c++) if (c !== digit && probabilities[c] > second) second = probabilities[c];
  const [x0, y0, x1, y1] = bounds(parts);
  const aspect = (x1 - x0) / Math.max(1, y1 - y0);
  let score = rules.digit_bonus + Math.log(Math.max(probability, 1e-12));
  score -= rules.aspect_penalty * Math.max(0, aspect - rules.free_aspect);
  score -= classAspectPenalty(aspect, digit, spec);
  const short = rules.min_height_heights - (y1 - y0) / height;
  score -= (rules.small_penalty * Math.max(0, short)) / rules.min_height_heights;
  if (band) {
    let off = Math.max(0, (band[1] - y1) / height - rules.band_tolerance_heights);
    off += Math.max(0, (y0 - band[0]) / height - rules.band_tolerance_heights);
    score -= rules.band_penalty * off;
  }
  score += (rules.second_weight ?? 0) * Math.log(Math.max(second, 1e-12));
  score += shapeTerms(parts, digit, height, rules);
  return score - rules.apart_penalty * joinsApart(parts, rules.apart_gap_heights * height);
}

/** The fitted terms (Python's _shape_terms): width and height against the digit height, atoms
 *  and components joined, a bonus per class, a cut component read whole or as a piece. */
function shapeTerms(parts, digit, height, rules) {
  if (!rules.class_bonus) return 0;
  const [x0, y0, x1, y1] = bounds(parts);
  const width = (x1 - x0) / height;
  let score = rules.width_weight * width + rules.width2_weight * width * width;
  score += (rules.height_weight * (y1 - y0)) / height + rules.class_bonus[digit];
  score += rules.atom_weight * (parts.length - 1) + rules.component_weight * (new Set(parts.map((p) => p.label)).size - 1);
  const whole = Math.max(...parts.map((p) => p.whole));
  if (whole && x1 - x0 >= whole) {
    score += rules.uncut_bonus;
  } else if (whole) {
    const ramp = (whole / height - rules.split_from_heights) / (rules.split_full_heights - rules.split_from_heights);
    score += rules.split_bonus * Math.min(1, Math.max(0, ramp));
  }
  return score;
}

/** How far the candidate's aspect falls outside the usual range of the class read (Python's
 *  class_aspect_penalty); 0 when the spec has no segment.class_aspect. */
function classAspectPenalty(aspect, digit, spec) {
  const rules = spec.segment.class_aspect;
  if (!rules || digit === null || digit >= rules.low.length) return 0;
  return rules.high_penalty * Math.max(0, aspect - rules.high[digit]) + rules.low_penalty * Math.max(0, rules.low[digit] - aspect);
}

function joinsApart(parts, fullGap) {
  let joins = 0;
  let right = parts[0].x1;
  for (let k = 1; k < parts.length; k++) {
    const before = parts[k - 1];
    const piece = parts[k];
    if (piece.label !== before.label && piece.x0 >= right) joins += Math.min(1, (piece.x0 - right + 1) / Math.max(fullGap, 1));
    right = Math.max(right, piece.x1);
  }
  return joins;
}

function skipCost(part, height, spec) {
  const rules = spec.segment;
  return rules.skip_base + (rules.skip_area_heights2 * part.area) / (height * height);
}

function cutCosts(parts, stroke, spec) {
  const costs = parts.map(() => 0);
  const free = spec.cut.free_strokes ?? 0; // a cut through this many strokes is free
  for (let k = 1; k < parts.length; k++) {
    if (parts[k].cutInk && parts[k - 1].label === parts[k].label) {
      costs[k] = spec.cut.cost * Math.max(0, parts[k].cutInk / Math.max(stroke, 1) - free) ** 2;
      costs[k] += spec.cut.start_cost ?? 0;
    }
  }
  return costs;
}

/** Step 12: the partition of the atoms with the highest total score (dynamic programming). */
export function bestSegmentation(count, scored, skips, cuts) {
  const best = [0, ...new Array(count).fill(-Infinity)];
  const back = new Array(count + 1).fill([0, false]);
  for (let j = 1; j <= count; j++) {
    if (best[j - 1] - skips[j - 1] > best[j]) {
      best[j] = best[j - 1] - skips[j - 1];
      back[j] = [j - 1, false];
    }
    for (let i = 0; i < j; i++) {
      let score = scored.get(`${i},${j}`);
      if (score === undefined) continue;
      score -= cuts[i];
      if (best[i] + score > best[j]) {
        best[j] = best[i] + score;
        back[j] = [i, true];
      }
    }
  }
  const chosen = [];
  for (let j = count; j > 0; ) {
    const [i, isDigit] = back[j];
    if (isDigit) chosen.push([i, j]);
    j = i;
  }
  return chosen.reverse();
}
