// The page's preprocessing (js/preprocess.js) against the Python runtime's, on golden drawings the
// Python recipe wrote (tests/js/write_goldens.py), without a browser: `node --test`.
// The recipe's constants come from one file both read (js/contract/preprocess_spec.json).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { NoDigitError, prepare } from '../../demo/web/js/preprocess.js';
import SPEC from '../../demo/web/js/contract/preprocess_spec.json' with { type: 'json' };

const GOLDEN = process.env.MNIST_EDGE_GOLDEN_DIR;
// The JavaScript follows the Python float32 steps: measured, the two agree to about 1e-7 per pixel.
const MAX_PIXEL_DIFF = 1e-4;
const INPUT = { shape: [null, SPEC.MNIST_SIZE, SPEC.MNIST_SIZE], preprocessing: { kind: 'digit', box: SPEC.MNIST_BOX } };

function goldens() {
  assert.ok(GOLDEN, 'set MNIST_EDGE_GOLDEN_DIR: python tests/js/write_goldens.py DIR writes the golden files (pytest tests/test_web_node.py does both)');
  return JSON.parse(readFileSync(join(GOLDEN, 'index.json'), 'utf8'));
}

function pixels(entry) {
  const bytes = readFileSync(join(GOLDEN, `${entry.name}.rgba`));
  return { data: new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, bytes.length), width: entry.width, height: entry.height };
}

function expected(entry) {
  const bytes = readFileSync(join(GOLDEN, `${entry.name}.f32`));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

test('every golden drawing comes out as Python made it', () => {
  const cases = goldens();
  assert.ok(cases.filter((c) => !c.no_digit).length >= 30, 'too few golden digits');
  const report = [];
  for (const entry of cases.filter((c) => !c.no_digit)) {
    const mine = prepare(pixels(entry), INPUT);
    const theirs = expected(entry);
    assert.equal(mine.length, theirs.length, entry.name);
    let sum = 0;
    let max = 0;
    for (let i = 0; i < mine.length; i++) {
      const d = Math.abs(mine[i] - theirs[i]);
      sum += d;
      max = Math.max(max, d);
    }
    report.push({ name: entry.name, mean: sum / mine.length, max });
  }
  const worst = report.reduce((a, b) => (b.mean > a.mean ? b : a));
  console.log(`${report.length} drawings; worst mean |delta| ${worst.mean.toExponential(2)} (${worst.name}), max |delta| ${Math.max(...report.map((r) => r.max)).toExponential(2)}`);
  for (const r of report) assert.ok(r.max <= MAX_PIXEL_DIFF, `${r.name}: max |delta| ${r.max} over ${MAX_PIXEL_DIFF}`);
});

test('drawings Python refuses are refused here too', () => {
  const refused = goldens().filter((c) => c.no_digit);
  assert.ok(refused.length >= 2);
  for (const entry of refused) {
    assert.throws(() => prepare(pixels(entry), INPUT), NoDigitError, entry.name);
  }
});
