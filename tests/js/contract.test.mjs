// The manifest contract and the engine table on the page's side, without a browser: a manifest
// the Python exporter wrote passes the page's check; a newer major version and a wrong field type
// are refused with a message; every engine the registry declares has its page module.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { MAJOR, checkManifest } from '../../demo/web/js/contract.js';
import engineTable from '../../demo/web/js/engines/engines.json' with { type: 'json' };

const GOLDEN = process.env.MNIST_EDGE_GOLDEN_DIR;

function manifest() {
  assert.ok(GOLDEN, 'set MNIST_EDGE_GOLDEN_DIR (pytest tests/test_web_node.py writes a real manifest there)');
  return JSON.parse(readFileSync(join(GOLDEN, 'manifest.json'), 'utf8'));
}

test('a manifest the exporter wrote is accepted', () => {
  const m = manifest();
  assert.equal(m.schema_version.split('.')[0], MAJOR);
  assert.equal(checkManifest(m), m);
  const minor = { ...m, schema_version: `${MAJOR}.99`, a_field_from_the_future: [1] };
  assert.equal(checkManifest(minor), minor); // a newer minor version only adds fields
});

test('a newer major version is refused with a message', () => {
  const newer = { ...manifest(), schema_version: `${Number(MAJOR) + 1}.0` };
  assert.throws(() => checkManifest(newer, 'm.json'), /m\.json: schema_version "\d+\.0" is not supported by this page \(it reads \d+\.x\)/);
});

test('a wrong field type or a missing field is refused with a message naming it', () => {
  const m = manifest();
  const wrong = { ...m, artifacts: [{ ...m.artifacts[0], sha256: 42 }] };
  assert.throws(() => checkManifest(wrong), /artifacts\[0\]\.sha256: expected string, found integer/);
  const { input, ...noInput } = m;
  assert.ok(input);
  assert.throws(() => checkManifest(noInput), /input: missing/);
  const badShape = { ...m, input: { ...m.input, shape: 'a' } };
  assert.throws(() => checkManifest(badShape), /input\.shape: expected array, found string/);
});

test('every declared browser engine has a page module with open()', async () => {
  const names = Object.keys(engineTable.engines);
  assert.ok(names.length >= 1);
  for (const name of names) {
    const module = await import(new URL(`../../demo/web/js/${engineTable.engines[name].page_module}`, import.meta.url));
    assert.equal(typeof module.open, 'function', name);
  }
});
