// node --test tests/js/number.test.mjs: demo/web/js/number.js against golden readings written by the
// Python recipe (tests/js/make_number_fixture.py) on generated fields. Both sides read the same
// grey pixels; the JS is given the probabilities the Python model gave each candidate, so no model
// runs here and any difference is the recipe's. $NUMBER_FIXTURE names the golden file
// (tests/test_web_number.py writes a fresh one); else tests/js/fixture/number.json.gz.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { floats, loadGoldens, rgba } from './goldens.mjs';

import { choose, digitGeometry, segment } from '../../demo/web/js/number.js';

const fixturePath = process.env.NUMBER_FIXTURE || fileURLToPath(new URL('./fixture/number.json.gz', import.meta.url));
const SPEC_FILE = fileURLToPath(new URL('../../runtime/number_spec.json', import.meta.url));
const MAX_INPUT_DIFF = 1e-5;

function moments(input, size) {
  let mass = 0;
  let rows = 0;
  let cols = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      mass += input[y * size + x];
      rows += input[y * size + x] * y;
      cols += input[y * size + x] * x;
    }
  }
  return [mass, rows / Math.max(mass, 1e-9), cols / Math.max(mass, 1e-9)];
}

const golden = loadGoldens(fixturePath, 'python tests/js/make_number_fixture.py EXPORT');
const spec = JSON.parse(readFileSync(SPEC_FILE, 'utf8'));
const geometry = digitGeometry(golden.input);

test('the golden readings were written with this number_spec.json', () => {
  assert.deepEqual(golden.spec, spec);
  assert.ok(golden.fields.length >= 30, `${golden.fields.length} fields`);
});

golden.fields.forEach((field, n) => {
  test(`field ${n} (${field.truth}): the same atoms, candidates, 28x28s and reading as Python`, () => {
    let found;
    try {
      found = segment(rgba(field), spec, geometry);
    } catch (error) {
      if (!field.error || field.parts) throw error;
      assert.equal(error.message, field.error);
      return;
    }
    assert.equal(found.height, field.digit_height, 'digit height');
    assert.deepEqual(found.parts.map((p) => [p.x0, p.y0, p.x1, p.y1, p.area, p.label, p.cutInk]), field.parts, 'atoms');
    assert.deepEqual(found.spans, field.spans, 'candidate digits');
    assert.deepEqual(found.dividers, field.dividers, "a comb's dividers");
    const pixels = geometry.size * geometry.size;
    field.input_moments.forEach((expected, k) => {
      const mine = moments(found.batch.subarray(k * pixels, (k + 1) * pixels), geometry.size);
      mine.forEach((value, m) => assert.ok(Math.abs(value - expected[m]) <= 1e-3 * Math.max(1, Math.abs(expected[m])), `candidate ${k} moment ${m}: ${value} vs ${expected[m]}`));
    });
    const probabilities = floats(field.probabilities);
    let reading;
    try {
      reading = choose(found, probabilities, golden.class_names, spec);
    } catch (error) {
      if (!field.error) throw error;
      assert.equal(error.message, field.error);
      return;
    }
    assert.ok(!field.error, `Python refused it: ${field.error}; JS read ${reading.text}`);
    assert.equal(reading.text, field.reading.text);
    assert.deepEqual(reading.digits.map((d) => d.box), field.reading.boxes);
    assert.ok(Math.abs(reading.confidence - field.reading.confidence) < 1e-9);
    assert.equal(reading.rejected, field.reading.rejected);
    const chosen = floats(field.chosen_inputs);
    reading.digits.forEach((digit, k) => {
      let worst = 0;
      for (let i = 0; i < pixels; i++) worst = Math.max(worst, Math.abs(digit.input[i] - chosen[k * pixels + i]));
      assert.ok(worst <= MAX_INPUT_DIFF, `digit ${k}: 28x28 differs by ${worst}`);
    });
  });
});
