// The manifest contract on the page's side: manifest.json is checked against the JSON Schema that
// Python generates from its dataclasses (mnist_edge/manifest.py -> contract/manifest.schema.json,
// the same file), so the page refuses a manifest it cannot use with a message, instead of failing
// later on a missing field. The validator knows the few JSON Schema keywords that schema uses.

import { ModelLoadError } from './errors.js';
import manifestSchema from './contract/manifest.schema.json' with { type: 'json' };
import siteSchema from './contract/models.schema.json' with { type: 'json' };

/** The schema's major version ("2" for 2.x), read from its schema_version pattern. */
export const MAJOR = manifestSchema.properties.schema_version.pattern.match(/\^(\d+)/)[1];

/** Throw ModelLoadError if `manifest` is not a manifest this page reads; `where` names the file. */
export function checkManifest(manifest, where = 'manifest.json') {
  const version = manifest?.schema_version;
  if (typeof version !== 'string' || version.split('.')[0] !== MAJOR) {
    throw new ModelLoadError(
      `${where}: schema_version ${JSON.stringify(version)} is not supported by this page (it reads ${MAJOR}.x); ` +
        'rebuild the site with the mnist-edge that exported the model',
    );
  }
  const problems = validate(manifest, manifestSchema, '');
  if (problems.length) throw new ModelLoadError(`${where} does not match the manifest schema: ${problems.slice(0, 3).join('; ')}`);
  return manifest;
}

/** Throw an Error if `index` (models.json) does not match the schema Python generates for it. */
export function checkSiteIndex(index, where = 'models.json') {
  const problems = validate(index, siteSchema, '');
  if (problems.length) throw new Error(`${where} does not match its schema: ${problems.slice(0, 3).join('; ')}`);
  return index;
}

/** Every way `value` breaks `schema`, each as "path: expected ..., found ...". */
export function validate(value, schema, path) {
  if (schema.anyOf) {
    const each = schema.anyOf.map((option) => validate(value, option, path));
    return each.some((p) => p.length === 0) ? [] : each[0];
  }
  const found = typeOf(value);
  if (schema.type && !(found === schema.type || (schema.type === 'number' && found === 'integer'))) {
    return [`${path || 'the manifest'}: expected ${schema.type}, found ${found}`];
  }
  if (schema.pattern && !new RegExp(schema.pattern).test(value)) return [`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`];
  if (found === 'object') return validateObject(value, schema, path);
  if (found === 'array') return validateArray(value, schema, path);
  return [];
}

function validateObject(value, schema, path) {
  const problems = (schema.required || []).filter((name) => !(name in value)).map((name) => `${path}${path ? '.' : ''}${name}: missing`);
  for (const [name, item] of Object.entries(value)) {
    const itemSchema = schema.properties?.[name] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : null);
    if (itemSchema) problems.push(...validate(item, itemSchema, `${path}${path ? '.' : ''}${name}`));
  }
  return problems;
}

function validateArray(value, schema, path) {
  if (schema.minItems !== undefined && value.length < schema.minItems) return [`${path}: expected at least ${schema.minItems} values, found ${value.length}`];
  if (schema.maxItems !== undefined && value.length > schema.maxItems) return [`${path}: expected at most ${schema.maxItems} values, found ${value.length}`];
  return value.flatMap((item, i) => {
    const itemSchema = schema.prefixItems?.[i] ?? schema.items;
    return itemSchema ? validate(item, itemSchema, `${path}[${i}]`) : [];
  });
}

function typeOf(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isInteger(value)) return 'integer';
  return typeof value;
}
