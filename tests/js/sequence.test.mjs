// node --test tests/js/sequence.test.mjs: the page's number reader (demo/web/js/sequence.js, and
// js/number.js's readNumber with a reader, "auto" and "sequence") against golden readings the
// Python runtime wrote (tests/js/make_number_fixture.py's make_sequence_fixture) on generated
// fields; and js/resample.js's BILINEAR against Pillow's. Both sides read the same grey pixels; the
// JS is given the probabilities the Python digit model and number reader gave, so no model runs
// here and any difference is the recipe's. $SEQUENCE_FIXTURE names the golden file
// (tests/test_web_number.py writes a fresh one).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { floats, loadGoldens, rgba } from './goldens.mjs';

import { fieldMarks, readNumber } from '../../demo/web/js/number.js';
import { BILINEAR, resize } from '../../demo/web/js/resample.js';
import { bestPath, combine, cut, lineImage, modelInput, readerRules } from '../../demo/web/js/sequence.js';

const fixturePath = process.env.SEQUENCE_FIXTURE || fileURLToPath(new URL('./fixture/sequence.json.gz', import.meta.url));
const SPEC_FILE = fileURLToPath(new URL('../../runtime/number_spec.json', import.meta.url));
const MAX_LINE_DIFF = 1e-5; // the line image (the model's input), per pixel

function maxDiff(a, b) {
  assert.equal(a.length, b.length, 'lengths');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const golden = loadGoldens(fixturePath, 'python tests/js/make_number_fixture.py --sequence EXPORT OUT');
const spec = JSON.parse(readFileSync(SPEC_FILE, 'utf8'));
const rules = readerRules(golden.reader);
const manifest = { input: golden.input, reader: golden.reader };

/** A model and a reader that answer what Python's did, checking they are asked the same. */
function recorded(record) {
  const calls = { model: 0, reader: 0, lineDiff: 0 };
  const model = {
    manifest,
    classNames: golden.class_names,
    async run(batch, n) {
      calls.model += 1;
      assert.ok(record.probabilities, 'JS ran the digit model on a field Python did not');
      assert.equal(n, record.candidates, 'candidate digits');
      return floats(record.probabilities);
    },
  };
  const reader = {
    rules,
    async run(x, height, width) {
      calls.reader += 1;
      assert.ok(record.line, 'JS ran the number reader on a field Python did not');
      assert.deepEqual([height, width], [record.line.height, record.line.width], 'line image size');
      calls.lineDiff = maxDiff(x, floats(record.line.image));
      assert.ok(calls.lineDiff <= MAX_LINE_DIFF, `line image differs by ${calls.lineDiff}`);
      return { data: floats(record.line_probabilities), columns: record.columns };
    },
  };
  return { model, reader, calls };
}

function checkReading(reading, expected) {
  assert.equal(reading.text, expected.text);
  assert.equal(reading.reader, expected.reader);
  assert.deepEqual(reading.digits.map((d) => d.box), expected.boxes);
  assert.ok(Math.abs(reading.confidence - expected.confidence) < 1e-9, `confidence ${reading.confidence} vs ${expected.confidence}`);
  assert.equal(reading.rejected, expected.rejected);
  reading.digits.forEach((d, k) => {
    assert.ok(Math.abs(d.confidence - expected.digits[k].confidence) < 1e-12, `digit ${k} confidence`);
    assert.deepEqual(d.top.map(([name]) => name), expected.digits[k].top.map(([name]) => name), `digit ${k} top 3`);
  });
  if (expected.inputs) {
    reading.digits.forEach((d, k) => {
      assert.equal(d.inputWidth, expected.inputs[k].width, `digit ${k} picture width`);
      assert.ok(maxDiff(d.input, floats(expected.inputs[k].data)) <= MAX_LINE_DIFF, `digit ${k} picture`);
    });
  }
}

const tally = { auto: 0, sequence: 0, autoBySequence: 0, autoByDigits: 0, refused: {}, worstLine: 0 };

test('the sequence goldens were written with this number_spec.json', () => {
  assert.deepEqual(golden.spec, spec);
  assert.ok(golden.fields.length >= 30, `${golden.fields.length} fields`);
});

// Each field read "auto", "sequence", and "auto" with the reader's probabilities tempered (the
// same best path, less sure: "auto" then picks each reader on some fields); the first fields also
// with a reader that finds no digit ("silent") and one that finds too many ("chatty"), each read
// "auto" and "sequence" (the fixture's DOCTORS).
const READINGS = [['auto', 'auto'], ['sequence', 'sequence'], ['tempered', 'auto']];
for (const doctor of ['silent', 'chatty']) for (const mode of ['auto', 'sequence']) READINGS.push([`${doctor} ${mode}`, mode]);

for (const [name, mode] of READINGS) {
  golden.fields.forEach((field, n) => {
    if (!field[name]) return;
    test(`line ${n} ${name} (${field.truth}, ${field.conditions.join(' ')}): the same reading as Python`, async () => {
      const record = field[name];
      const { model, reader, calls } = recorded(record);
      let reading;
      try {
        reading = await readNumber(rgba(field), model, spec, { reader, mode });
      } catch (error) {
        if (!record.error) throw error;
        assert.equal(error.message, record.error);
        tally.refused[error.message] = (tally.refused[error.message] ?? 0) + 1;
        return;
      }
      assert.ok(!record.error, `Python refused it: ${record.error}; JS read ${reading.text}`);
      checkReading(reading, record.reading);
      assert.equal(calls.reader, record.line ? 1 : 0, 'reader runs');
      tally.worstLine = Math.max(tally.worstLine, calls.lineDiff);
      tally[mode] += 1;
      if (mode === 'auto') tally[reading.reader === 'sequence' ? 'autoBySequence' : 'autoByDigits'] += 1;
    });
  });
}

test('every path was taken: sequence readings, and auto readings by each reader', () => {
  console.log(`# sequence goldens: ${JSON.stringify(tally)}`);
  assert.ok(tally.sequence >= golden.fields.length / 2, `only ${tally.sequence} sequence readings`);
  assert.ok(tally.autoBySequence >= 1, 'no auto reading came from the sequence reader');
  assert.ok(tally.autoByDigits >= 1, 'no auto reading came from the digit reader');
  const refusals = Object.keys(tally.refused).join(' | ');
  assert.match(refusals, /no digit found: the marks do not read as digits/); // "silent sequence"
  assert.match(refusals, /too many digits: read \d+, a number has at most 12/); // "chatty sequence"
});

test("Pillow's bilinear resize of float images, down and up, equals js/resample.js's BILINEAR", () => {
  assert.ok(golden.resample.length >= 5);
  let exact = 0;
  for (const c of golden.resample) {
    const out = resize({ data: floats(c.data), width: c.width, height: c.height }, c.out_width, c.out_height, BILINEAR);
    assert.deepEqual([out.width, out.height], [c.out_width, c.out_height]);
    const diff = maxDiff(out.data, floats(c.out));
    assert.ok(diff <= 1e-6, `${c.width}x${c.height} -> ${c.out_width}x${c.out_height}: differs by ${diff}`);
    exact += diff === 0;
  }
  console.log(`# bilinear: ${exact} of ${golden.resample.length} resizes equal to the bit`);
});

test('best path: runs merged, blanks dropped, each digit at its first best column', () => {
  // columns: 3 3 blank 3 7 7 blank ; class 3's best column in its first run is the second
  const p = (best, value = 0.9) => Array.from({ length: 11 }, (_, c) => (c === best ? value : 0.01));
  const rows = [p(3, 0.6), p(3, 0.8), p(10), p(3), p(7), p(7), p(10)];
  const probabilities = Float32Array.from(rows.flat());
  assert.deepEqual(bestPath(probabilities, rows.length, 10), [
    { digit: 3, start: 0, stop: 2, peak: 1 },
    { digit: 3, start: 3, stop: 4, peak: 3 },
    { digit: 7, start: 4, stop: 6, peak: 4 },
  ]);
  assert.deepEqual(bestPath(new Float32Array(0), 0, 10), []);
});

test('cut: the rightmost column of least ink in the right half between two peaks', () => {
  const columns = Int32Array.from([9, 9, 9, 9, 9, 2, 9, 2, 9, 9]);
  assert.equal(cut(columns, 0, 9), 7); // window [5, 9): 2 9 2 9, the rightmost of the two 2s
  assert.equal(cut(columns, 0, 5.5), 5); // window [3, 6)
  assert.equal(cut(columns, 2, 3), 2); // no window: the middle, 2.5, rounded half to even
  assert.equal(cut(columns, 3, 4), 4); // 3.5 -> 4
});

test('combine: the digit reading when it reads as many digits and is at least as sure', () => {
  const digits = { text: '12', confidence: 0.9 };
  assert.equal(combine(digits, { text: '12', confidence: 0.9 }), digits);
  assert.equal(combine(digits, { text: '13', confidence: 0.8 }), digits);
  const line = { text: '12', confidence: 0.95 };
  assert.equal(combine(digits, line), line);
  const longer = { text: '123', confidence: 0.1 };
  assert.equal(combine(digits, longer), longer);
});

test('the line image: the marks cropped, height rows, padded, at most max_width columns', () => {
  const field = golden.fields.find((f) => f.sequence.line);
  const { field: ink, pieces } = fieldMarks(rgba(field), spec);
  const line = lineImage(ink, pieces, rules);
  assert.equal(line.image.height, rules.height);
  assert.equal(line.image.width, line.width + 2 * rules.pad);
  assert.ok(line.image.width <= rules.max_width);
  const input = modelInput(line, rules.stride);
  assert.equal(input.width % rules.stride, 0);
  assert.deepEqual([input.height, input.width], [field.sequence.line.height, field.sequence.line.width]);
});
