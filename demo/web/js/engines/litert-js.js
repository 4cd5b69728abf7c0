// LiteRT.js behind the page's session interface: run(x, n) -> probabilities.
// Declared in mnist_edge.formats.BROWSER_ENGINES, which names this module (js/engines/engines.json).

import { ModelLoadError } from '../errors.js';

let liteRtLoading = null;

/** A session over already-verified bytes; `litert` is the engine's entry module. */
export async function open(litert, bytes, runtime, manifest, artifact) {
  liteRtLoading ??= litert.loadLiteRt(runtime.wasm);
  await liteRtLoading;
  const model = await litert.loadAndCompile(bytes, { accelerator: 'wasm' });
  const [, height, width] = manifest.input.shape;
  const classes = manifest.class_names.length;
  const pixels = height * width;
  if (artifact.batch !== 1) throw new ModelLoadError(`${artifact.file}: LiteRT.js needs a static batch of 1`);
  return {
    // A static batch of one: one call per image.
    async run(x, n) {
      const out = new Float32Array(n * classes);
      for (let i = 0; i < n; i++) {
        const input = new litert.Tensor(x.slice(i * pixels, (i + 1) * pixels), [1, height, width]);
        const outputs = await model.run(input);
        out.set(outputs[0].toTypedArray(), i * classes);
        input.delete();
        for (const tensor of outputs) tensor.delete();
      }
      return out;
    },
  };
}
