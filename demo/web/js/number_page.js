// The page's Number mode: a wide pad, read with js/number.js (the recipe of docs/reading.md) by the
// model page.js loaded. Shows the text, its confidence, a box per digit over the pad and each
// digit's 28x28 with its confidence. `window.mnistEdge.number` exposes it to tests.

import { Sketch } from './draw.js';
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

/** Read RGBA pixels with the page's model: the reading, or {error} for a refused field. */
async function readPixels(pixels) {
  const model = window.mnistEdge.state.model;
  if (!model) return { error: 'The model is not loaded yet.' };
  try {
    return await readNumber(pixels, model, await loadSpec());
  } catch (error) {
    if (!['NoDigitError', 'TooManyDigitsError'].includes(error.name) && !/reading numbers needs/.test(error.message)) throw error;
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
  $('num-timing').textContent = reading
    ? `cut ${reading.timing.segment.toFixed(1)} ms · model ${reading.timing.inference.toFixed(1)} ms (one batch) · choose ${reading.timing.choose.toFixed(1)} ms`
    : '';
  drawBoxes(reading ? reading.digits : []);
  $('num-digits').replaceChildren(...(reading ? reading.digits.map(digitItem) : []));
  return reading;
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

function digitItem(digit) {
  const item = document.createElement('li');
  const canvas = document.createElement('canvas');
  const size = Math.round(Math.sqrt(digit.input.length));
  canvas.width = canvas.height = size;
  const image = canvas.getContext('2d').createImageData(size, size);
  digit.input.forEach((v, i) => {
    const grey = Math.round(255 * v);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  canvas.getContext('2d').putImageData(image, 0, 0);
  canvas.setAttribute('aria-label', `the ${digit.label} as the model saw it`);
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
