// Load an exported model by its manifest and run it in the page.
//
// The manifest (the same manifest.json the Python runtime reads) names the input, its shape, the
// class names and, for each artifact, its size and sha256. The model's bytes are checked against
// both before any session is created: a modified file is refused with a message. An export may
// also carry a number reader (the manifest's `reader`, a sequence model): loadReader opens it the
// same way, on the browser engine that mirrors the runtime it was proven on.
//
// Engines: the ones mnist_edge.formats.BROWSER_ENGINES declares, listed in engines/engines.json
// (written from the registry) with the module of each: onnxruntime-web (wasm build; what the site
// ships) and LiteRT.js (used by the build's proofs). Their runtime files come from npm at build
// time, never from a CDN; `runtime` says where.

import { checkSignedModelFile } from './signature.js';
import { ModelLoadError } from './errors.js';
import { checkManifest } from './contract.js';
import engineTable from './engines/engines.json' with { type: 'json' };

export { ModelLoadError };

/**
 * @param {object} entry    {manifest: URL of manifest.json, file: artifact file name, engine}
 * @param {object} runtime  {module: URL of the engine's entry module, wasm?: URL of its wasm folder}
 * @returns {Promise<Model>}
 */
export async function loadModel(entry, runtime) {
  const declared = engineTable.engines[entry.engine];
  if (!declared) {
    throw new ModelLoadError(`no engine ${entry.engine} in this page (it has ${Object.keys(engineTable.engines).join(', ')})`);
  }
  const { open } = await import(new URL(declared.page_module, import.meta.url));
  // The engine's module, the manifest and the model file load at the same time; the bytes are
  // checked against the manifest before the engine sees them.
  const engine = import(runtime.module);
  engine.catch(() => {}); // reported below, once it is awaited
  const manifestUrl = new URL(entry.manifest, document.baseURI);
  const [manifest, bytes] = await Promise.all([fetchJson(manifestUrl), fetchBytes(new URL(entry.file, manifestUrl))]);
  checkManifest(manifest, manifestUrl.pathname);
  const artifact = (manifest.artifacts || []).find((a) => a.file === entry.file);
  if (!artifact) throw new ModelLoadError(`${entry.file} is not listed in ${manifestUrl.pathname}`);
  await checkSignedModelFile(manifestUrl, manifest, entry.file, bytes); // a no-op unless the build embedded a key
  await checkBytes(bytes, artifact);
  try {
    const session = await open(await engine, bytes, runtime, manifest, artifact);
    const model = new Model(manifest, artifact, entry.engine, session);
    model.source = { manifestUrl, runtime }; // where loadReader finds the export's number reader
    return model;
  } catch (error) {
    if (error instanceof ModelLoadError) throw error;
    throw new ModelLoadError(`${artifact.file}: ${entry.engine} cannot load it (${error.message || error})`);
  }
}

export class Model {
  constructor(manifest, artifact, engine, session) {
    this.manifest = manifest;
    this.artifact = artifact;
    this.engine = engine;
    this.session = session;
    this.classNames = manifest.class_names;
    const [, height, width] = manifest.input.shape;
    this.pixels = height * width;
  }

  /** Probabilities [n * classes] for n inputs of height * width floats in [0, 1]. */
  async run(x, n = 1) {
    if (x.length !== n * this.pixels) throw new Error(`expected ${n} x ${this.pixels} values, got ${x.length}`);
    return this.session.run(x, n);
  }
}

// --- the number reader ---------------------------------------------------------------------

/** Whether `manifest` lists a number reader the page uses: one whose proof passed (as Python's
 *  predictor.has_reader). */
export function hasReader(manifest) {
  return Boolean(manifest.reader?.proof?.passed);
}

/** The page's engine for the manifest's number reader: the bundled browser engine that mirrors
 *  the runtime its proof ran on (engines.json's `reference`), or null. */
export function readerEngine(manifest) {
  const proven = manifest.reader?.proof?.engine;
  return Object.keys(engineTable.engines).find((name) => engineTable.engines[name].bundled && engineTable.engines[name].reference === proven) ?? null;
}

/**
 * The export's number reader (manifest.reader: a sequence model, js/sequence.js), next to the
 * model's manifest: its bytes checked against the manifest's size and sha256 (and the signature,
 * on a site built with a key) before the engine sees them, as a model file's are. Null when the
 * manifest lists none with a passed proof. The engine is readerEngine's (onnxruntime-web's wasm
 * build, whose session API is used here).
 * @param {Model} model    a Model loadModel returned
 * @param {object} runtime {module: URL of that engine's entry module} (the model's own, if it runs on it)
 * @returns {Promise<Reader|null>}
 */
export async function loadReader(model, runtime = model.engine === readerEngine(model.manifest) ? model.source?.runtime : null) {
  const { manifest } = model;
  if (!hasReader(manifest)) return null;
  const spec = manifest.reader;
  const engineName = readerEngine(manifest);
  if (!engineName || !runtime || !model.source) {
    const wanted = engineName ?? `an engine like ${spec.proof.engine}`;
    throw new ModelLoadError(`${spec.file}: the number reader runs on ${wanted}, which this page has not loaded`);
  }
  const engine = import(runtime.module);
  engine.catch(() => {}); // reported below, once it is awaited
  const { manifestUrl } = model.source;
  const bytes = await fetchBytes(new URL(spec.file, manifestUrl));
  await checkSignedModelFile(manifestUrl, manifest, spec.file, bytes); // a no-op unless the build embedded a key
  await checkBytes(bytes, spec);
  let session;
  try {
    const ort = await engine;
    ort.env.wasm.wasmPaths = new URL('./', runtime.module).href;
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = 'error';
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    if (session.inputNames.length !== 1 || session.inputNames[0] !== spec.input_name) {
      throw new ModelLoadError(`expected one input '${spec.input_name}' [batch, ${spec.height}, width, 1], found ${session.inputNames.join(', ')}`);
    }
    return new Reader(spec, ort, session);
  } catch (error) {
    throw new ModelLoadError(`${spec.file}: ${engineName} cannot load it as a number reader (${error.message || error})`);
  }
}

/** An export's number reader, open: run(x, height, width) -> {data: probabilities [columns, 11], columns}. */
export class Reader {
  constructor(spec, ort, session) {
    this.file = spec.file;
    this.rules = { height: spec.height, pad: spec.pad, max_width: spec.max_width, stride: spec.stride, blank: spec.blank };
    this.ort = ort;
    this.session = session;
  }

  /** The probabilities for one line image [1, height, width, 1] (width a multiple of the stride). */
  async run(x, height, width) {
    if (height !== this.rules.height || x.length !== height * width) throw new Error(`expected ${this.rules.height} x ${width} values, got ${x.length}`);
    const [input] = this.session.inputNames;
    const [output] = this.session.outputNames;
    const result = await this.session.run({ [input]: new this.ort.Tensor('float32', x, [1, height, width, 1]) });
    const scores = result[output];
    const classes = this.rules.blank + 1;
    if (scores.dims.length !== 3 || scores.dims[2] !== classes) throw new Error(`${this.file}: scores of shape [${scores.dims}], expected [1, columns, ${classes}]`);
    return { data: scores.data, columns: scores.dims[1] };
  }
}

// --- integrity -----------------------------------------------------------------------------

export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new ModelLoadError(
      'this page cannot check the model: the browser offers SHA-256 (crypto.subtle) only on https:// or http://localhost pages',
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function checkBytes(bytes, artifact) {
  if (bytes.length !== artifact.bytes) {
    throw new ModelLoadError(
      `${artifact.file}: ${bytes.length} bytes, the manifest says ${artifact.bytes}; the file was modified or truncated, refusing to load it`,
    );
  }
  const digest = await sha256Hex(bytes);
  if (digest !== artifact.sha256) {
    throw new ModelLoadError(
      `${artifact.file}: sha256 ${digest.slice(0, 16)}… does not match the manifest's ${artifact.sha256.slice(0, 16)}…; the file was modified, refusing to load it`,
    );
  }
}

async function fetchJson(url) {
  const response = await fetchOk(url);
  try {
    return await response.json();
  } catch (error) {
    throw new ModelLoadError(`${url.pathname}: not valid JSON (${error.message})`);
  }
}

async function fetchBytes(url) {
  return new Uint8Array(await (await fetchOk(url)).arrayBuffer());
}

async function fetchOk(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new ModelLoadError(`${url.pathname}: cannot be fetched (${error.message}); is the page offline before its first full visit?`);
  }
  if (!response.ok) throw new ModelLoadError(`${url.pathname}: the server answered ${response.status} ${response.statusText}`);
  return response;
}
