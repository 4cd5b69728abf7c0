// The page: wires the drawing pad, the preprocessing, the model and the sample collection together.
// `window.mnistEdge` exposes the same functions to tests and benchmarks (they draw, then read
// what a person sees).

import { checkSiteIndex } from './contract.js';
import { Sketch } from './draw.js';
import { loadModel } from './infer.js';
import { keepLastGood, lastGoodEntry } from './lastgood.js';
import { NoDigitError, prepare } from './preprocess.js';
import { countSamples, deleteSamples, saveSample, samplesZip } from './samples.js';

const TOP = 3;
const $ = (id) => document.getElementById(id);

const state = {
  site: null, // models.json
  entry: null, // the chosen model's entry
  model: null, // a loaded Model, or null
  loading: null, // Promise of the model being loaded
  last: null, // the last prediction {label, probabilities, input, timing}
  answered: 0, // predict() calls finished, a prediction or a message
};

let queue = Promise.resolve(); // one prediction at a time: strokes can end faster than a model runs

const sketch = new Sketch($('pad'), { onStroke: () => predict() });

// --- models --------------------------------------------------------------------------------

async function start() {
  try {
    const response = await fetch('models.json');
    if (!response.ok) throw new Error(`models.json: the server answered ${response.status}`);
    state.site = checkSiteIndex(await response.json());
  } catch (error) {
    showStatus(`Cannot start: ${error.message}`, 'error');
    throw error;
  }
  const select = $('model');
  for (const entry of state.site.models) select.add(new Option(entry.title, entry.id));
  select.hidden = state.site.models.length < 2;
  select.addEventListener('change', () => choose(select.value).then(() => predict(), () => {}));
  await choose(state.site.models[0].id);
  registerServiceWorker();
}

async function choose(id) {
  const entry = state.site.models.find((m) => m.id === id);
  state.entry = entry;
  state.model = null;
  showStatus(`Loading ${entry.title}…`);
  const runtime = state.site.engines[entry.engine];
  const loading = loadModel(entry, { module: new URL(runtime.module, document.baseURI).href });
  state.loading = loading;
  try {
    const model = await loading;
    // One inference on a blank input: the engine's first run is several times slower, and is
    // better spent now than on the visitor's first drawing.
    await model.run(new Float32Array(model.pixels), 1);
    if (state.loading !== loading) return; // another model was chosen meanwhile
    state.model = model;
    await keepLastGood(entry, model).catch(() => {}); // a model that cannot be kept still runs
    showStatus(`${entry.title} ready · ${entry.engine} ${runtime.version}`);
    renderLabels();
    await renderCounts();
  } catch (error) {
    if (state.loading !== loading) return;
    if (await runLastGood(entry, loading, error)) return;
    state.loading = null;
    showStatus(`The model could not be loaded: ${error.message}`, 'error');
    throw error;
  }
}

/** When the chosen model was refused (`error`), run the last one of this entry that passed its
 *  checks in this browser (js/lastgood.js; loaded through the same checks again), and say both.
 *  True if it runs. */
async function runLastGood(entry, loading, error) {
  const kept = await lastGoodEntry(entry).catch(() => null);
  const runtime = kept && state.site.engines[kept.engine];
  if (!runtime) return false;
  try {
    const model = await loadModel(kept, { module: new URL(runtime.module, document.baseURI).href });
    await model.run(new Float32Array(model.pixels), 1);
    if (state.loading !== loading) return true;
    state.model = model;
  } catch {
    return false; // the kept copy is refused too: only the first refusal is shown
  }
  const version = kept.version ? `the export made ${kept.version}` : 'an unversioned export';
  showStatus(`The model could not be loaded: ${error.message}. Still running the last good ${kept.title}: ${version}.`, 'error');
  renderLabels();
  await renderCounts();
  return true;
}

// --- predicting ----------------------------------------------------------------------------

/** Preprocess the drawing and run the model; shows the result or a message. Resolves to the
 *  result (null with a message). Calls run one after another. */
function predict() {
  const result = queue.then(predictNow).finally(() => (state.answered += 1));
  queue = result.catch(() => {});
  return result;
}

async function predictNow() {
  const model = state.model;
  state.last = null;
  $('collect').disabled = true;
  if (sketch.empty) {
    clearResult('Draw a digit in the box first.');
    return null;
  }
  if (!model) {
    clearResult(state.loading ? 'The model is not loaded yet.' : 'No model is loaded.');
    return null;
  }
  const t0 = performance.now();
  let input;
  try {
    input = prepare(sketch.pixels(), model.manifest.input);
  } catch (error) {
    if (!(error instanceof NoDigitError)) throw error;
    clearResult(`${capitalise(error.message)}. Draw a larger digit.`);
    return null;
  }
  const t1 = performance.now();
  const probabilities = await model.run(input, 1);
  const t2 = performance.now();
  const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a]);
  const top = order.slice(0, TOP).map((i) => ({ label: model.classNames[i], probability: probabilities[i] }));
  state.last = { label: top[0].label, top, probabilities: Array.from(probabilities), input, timing: { preprocess: t1 - t0, inference: t2 - t1 } };
  renderResult(state.last, model);
  return state.last;
}

function renderResult(result, model) {
  const list = $('top');
  list.replaceChildren(
    ...result.top.map(({ label, probability }) => {
      const item = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'label';
      name.textContent = label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.setProperty('--p', probability.toFixed(4));
      const percent = document.createElement('span');
      percent.className = 'percent';
      percent.textContent = `${(probability * 100).toFixed(1)}%`;
      item.append(name, bar, percent);
      return item;
    }),
  );
  drawInput(result.input, model.manifest.input.shape);
  const { preprocess, inference } = result.timing;
  $('timing').textContent = `${(preprocess + inference).toFixed(1)} ms: preprocessing ${preprocess.toFixed(1)} ms + inference ${inference.toFixed(1)} ms`;
  showMessage('');
  $('collect').disabled = false;
  $('result').dataset.label = result.label;
}

function clearResult(message) {
  $('top').replaceChildren();
  $('timing').textContent = '';
  const seen = $('seen');
  seen.getContext('2d').clearRect(0, 0, seen.width, seen.height);
  delete $('result').dataset.label;
  showMessage(message);
}

/** The model's input as the model sees it (light on dark), one canvas pixel per input pixel. */
function drawInput(input, [, height, width]) {
  const canvas = $('seen');
  canvas.width = width;
  canvas.height = height;
  const image = new ImageData(width, height);
  for (let i = 0; i < input.length; i++) {
    const v = Math.round(input[i] * 255);
    image.data.set([v, v, v, 255], i * 4);
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
}

// --- your own samples ----------------------------------------------------------------------

function renderLabels() {
  const names = state.model.classNames;
  $('labels').replaceChildren(
    ...names.map((name) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = name;
      button.title = `Save this drawing as "${name}"`;
      button.addEventListener('click', () => collect(name));
      return button;
    }),
  );
}

async function collect(label) {
  if (!state.last || !state.model) return;
  const names = state.model.classNames;
  const count = await saveSample(names, label, await sketch.png());
  showMessage(`Saved as "${label}" (${count} of "${label}" in this browser).`);
  await renderCounts();
}

async function renderCounts() {
  if (!state.model) return;
  const counts = await countSamples(state.model.classNames);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  $('counts').textContent = total
    ? Object.entries(counts).map(([name, n]) => `${name}: ${n}`).join(' · ')
    : 'No samples yet.';
  $('download').disabled = total === 0;
  $('forget').disabled = total === 0;
}

async function download() {
  const { count, blob } = await samplesZip(state.model.classNames);
  if (!count) return;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = `my-${state.entry.name}-samples.zip`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  showMessage(`Downloaded ${count} samples: unzip, then mnist-edge evaluate <model> --data <folder>.`);
}

async function forget() {
  if (!confirm('Delete every sample saved in this browser for these classes?')) return;
  await deleteSamples(state.model.classNames);
  await renderCounts();
  showMessage('Samples deleted.');
}

// --- page furniture ------------------------------------------------------------------------

function showStatus(text, kind = '') {
  const status = $('status');
  status.textContent = text;
  status.className = kind;
  status.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

function showMessage(text) {
  $('message').textContent = text;
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) {
    $('offline').textContent = 'This browser cannot keep the app for offline use.';
    return;
  }
  // Registered after the model has loaded, so its first caching revalidates files the page
  // already fetched (304s) instead of downloading them a second time.
  navigator.serviceWorker.register('sw.js').then(
    () => navigator.serviceWorker.ready.then(() => ($('offline').textContent = 'Works offline: everything is kept in this browser.')),
    (error) => ($('offline').textContent = `Offline use is not available here (${error.message}).`),
  );
}

$('undo').addEventListener('click', () => {
  sketch.undo();
  predict();
});
$('clear').addEventListener('click', () => {
  sketch.clear();
  predict();
});
$('download').addEventListener('click', download);
$('forget').addEventListener('click', forget);

const ready = start();
ready.catch(() => {}); // shown on the page; tests await window.mnistEdge.ready themselves

window.mnistEdge = { ready, sketch, predict, prepare, state };
