// The page's Number mode: a wide pad, read with js/number.js (the recipe of docs/reading.md) by the
// model page.js loaded and, when its export carries one (the manifest's `reader`), by its number
// reader too (js/sequence.js: a sequence model for digits that touch), the two combined as the
// Python runtime's "auto" reading. Shows the text, its confidence, the files that read it, a box per
// digit over the pad and each digit as its reader saw it, with its confidence.
// `window.mnistEdge.number` exposes it to tests.

import { Sketch } from './draw.js';
import { hasReader, loadReader, readerEngine } from './infer.js';
import { readNumber } from './number.js';

const $ = (id) => document.getElementById(id);
const DIGIT_SECTIONS = ['.pad', '#result', '.collect'];

const numberState = {
  spec: null, // number_spec.json, fetched once
  last: null, // the last reading shown
  answered: 0, // read() calls finished, a reading or a message
};

let queue = Promise.resolve(); // one reading at a time

const sketch = new Sketch($('numpad'), { onStroke: () => read() });

function loadSpec() {
  numberState.spec ??= fetch('number_spec.json').then((response) => {
    if (!response.ok) throw new Error(`number_spec.json: the server answered ${response.status}`);
    return response.json();
  });
  numberState.spec.catch(() => (numberState.spec = null));
  return numberState.spec;
}

/** The number reader of the model's export, loaded once per model (js/infer.js checks its bytes
 *  first), or null when the export has none. A reader that fails to load is tried again next time. */
function readerOf(model) {
  if (!hasReader(model.manifest)) return null;
  if (!model.readerLoading) {
    const engine = readerEngine(model.manifest);
    const site = window.mnistEdge.state.site.engines[engine]; // when the model runs on another engine
    const runtime = model.engine === engine || !site ? undefined : { module: new URL(site.module, document.baseURI).href };
    const loading = loadReader(model, runtime);
    model.readerLoading = loading;
    loading.catch(() => {
      if (model.readerLoading === loading) model.readerLoading = null;
    });
  }
  return model.readerLoading;
}

/** Read RGBA pixels with the page's model (and its export's number reader): the reading, with
 *  `files` (the model file, "+ reader.onnx" when the number reader read it), or {error} for a
 *  refused field. `reader`: 'auto' (both readers, as Python's predictor.read), 'digits' or 'sequence'. */
async function readPixels(pixels, { reader: mode = 'auto' } = {}) {
  const model = window.mnistEdge.state.model;
  if (!model) return { error: 'The model is not loaded yet.' };
  try {
    const reader = mode === 'digits' ? null : await readerOf(model);
    const reading = await readNumber(pixels, model, await loadSpec(), { reader, mode });
    reading.files = reading.reader === 'sequence' ? `${model.artifact.file} + ${reader.file}` : model.artifact.file;
    return reading;
  } catch (error) {
    const refused = ['NoDigitError', 'TooManyDigitsError'].includes(error.name) || /reading numbers needs|has no number reader/.test(error.message);
    if (!refused) throw error;
    return { error: error.message };
  }
}

/** Read the pad and show the result; calls run one after another. */
function read() {
  const result = queue.then(readNow).finally(() => (numberState.answered += 1));
  queue = result.catch(() => {});
  return result;
}

async function readNow() {
  numberState.last = null;
  if (sketch.empty) return show(null, 'Write a number (1 to 12 digits) in the box.');
  let reading;
  try {
    reading = await readPixels(sketch.pixels());
  } catch (error) {
    show(null, `Cannot read it: ${error.message}`);
    throw error;
  }
  if (reading.error) return show(null, `${reading.error[0].toUpperCase()}${reading.error.slice(1).replace(/\.$/, '')}.`);
  numberState.last = reading;
  show(reading, reading.rejected ? 'Unsure: please check this reading.' : '');
  return reading;
}

function show(reading, message) {
  $('num-text').textContent = reading ? `${reading.text} · ${(100 * reading.confidence).toFixed(1)}%` : '';
  $('num-message').textContent = message;
  $('num-message').className = reading?.rejected ? 'error' : '';
  $('num-timing').textContent = reading ? timingText(reading) : '';
  drawBoxes(reading ? reading.digits : []);
  $('num-digits').replaceChildren(...(reading ? reading.digits.map((digit) => digitItem(digit, reading.reader)) : []));
  return reading;
}

/** Which files read the number and how long each step took. */
function timingText({ files, timing }) {
  const steps = [`cut ${timing.segment.toFixed(1)} ms`];
  if (timing.inference) steps.push(`model ${timing.inference.toFixed(1)} ms (one batch)`, `choose ${timing.choose.toFixed(1)} ms`);
  if (timing.sequence !== undefined) steps.push(`reader ${timing.sequence.toFixed(1)} ms`);
  return `read by ${files} · ${steps.join(' · ')}`;
}

function drawBoxes(digits) {
  const canvas = $('numboxes');
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.strokeStyle = '#38bdf8';
  context.fillStyle = '#38bdf8';
  context.lineWidth = 3;
  context.font = '24px system-ui, sans-serif';
  for (const { box: [x0, y0, x1, y1], label } of digits) {
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    context.fillText(label, x0 + 2, Math.max(22, y0 - 4));
  }
}

function digitItem(digit, reader) {
  const item = document.createElement('li');
  const canvas = document.createElement('canvas');
  const size = Math.round(Math.sqrt(digit.input.length));
  canvas.width = digit.inputWidth ?? size; // the number reader's digits: columns of its line image
  canvas.height = digit.inputHeight ?? size;
  if (canvas.width !== canvas.height) canvas.style.width = `${Math.round((56 * canvas.width) / canvas.height)}px`; // app.css: 56px tall
  const image = canvas.getContext('2d').createImageData(canvas.width, canvas.height);
  digit.input.forEach((v, i) => {
    const grey = Math.round(255 * v);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  canvas.getContext('2d').putImageData(image, 0, 0);
  canvas.setAttribute('aria-label', `the ${digit.label} as the ${reader === 'sequence' ? 'number reader' : 'model'} saw it`);
  const caption = document.createElement('span');
  caption.textContent = `${digit.label} · ${(100 * digit.confidence).toFixed(1)}%`;
  item.append(canvas, caption);
  return item;
}

function setMode(mode) {
  const number = mode === 'number';
  $('number').hidden = !number;
  for (const selector of DIGIT_SECTIONS) document.querySelector(selector).hidden = number;
  $('mode-digit').setAttribute('aria-pressed', String(!number));
  $('mode-number').setAttribute('aria-pressed', String(number));
  if (number) loadSpec().catch((error) => show(null, `Cannot read numbers: ${error.message}`));
  const model = window.mnistEdge.state.model;
  if (number && model) readerOf(model)?.catch(() => {}); // loaded ahead of the first reading; a failure shows then
}

$('mode-digit').addEventListener('click', () => setMode('digit'));
$('mode-number').addEventListener('click', () => setMode('number'));
$('num-undo').addEventListener('click', () => {
  sketch.undo();
  read();
});
$('num-clear').addEventListener('click', () => {
  sketch.clear();
  read();
});

window.mnistEdge.number = { sketch, read, readPixels, setMode, state: numberState };
