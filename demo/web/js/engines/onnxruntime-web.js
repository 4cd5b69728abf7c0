// onnxruntime-web (its wasm build) behind the page's session interface: run(x, n) -> probabilities.
// Declared in mnist_edge.formats.BROWSER_ENGINES, which names this module (js/engines/engines.json).

import { ModelLoadError } from '../errors.js';

/** A session over already-verified bytes; `ort` is the engine's entry module. */
export async function open(ort, bytes, runtime, manifest) {
  ort.env.wasm.wasmPaths = new URL('./', runtime.module).href;
  ort.env.wasm.numThreads = 1; // small models: one thread, no cross-origin isolation needed
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  if (inputName !== manifest.input.name || outputName !== manifest.output.name) {
    throw new ModelLoadError(
      `the model's input/output are ${inputName}/${outputName}, the manifest says ${manifest.input.name}/${manifest.output.name}`,
    );
  }
  const [, height, width] = manifest.input.shape;
  return {
    async run(x, n) {
      const result = await session.run({ [inputName]: new ort.Tensor('float32', x, [n, height, width]) });
      return result[outputName].data;
    },
  };
}
