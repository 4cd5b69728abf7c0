// A minimal TensorFlow Lite Micro program for the exported CNN (docs/microcontrollers.md):
// fills the model's input from a 28x28 grey image and prints the digit it reads.
//
// Build it with the three files `mnist-edge export` writes to artifacts/cnn/export
// (model_micro.cc, model_micro.h, model_micro_ops.h) and TFLM. For the MLP, the names are
// g_mlp_model_data, kMlpTensorArenaSize, MlpOpResolver and RegisterMlpOperators.

#include <cstdint>

#include "model_micro.h"
#include "model_micro_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// The arena TFLM allocates every tensor in; its size was measured at export (model_micro.h).
alignas(16) uint8_t tensor_arena[kCnnTensorArenaSize];

// Replace with your camera or touch screen: 28x28 grey pixels, 0 = background, 255 = ink, the
// digit centred as docs/preprocessing.md describes (MNIST's convention: light ink on dark).
uint8_t image[kCnnInputHeight * kCnnInputWidth];

}  // namespace

// Reads `pixels` (28x28, 0..255) and returns the digit, or -1 if TFLM fails.
int ReadDigit(const uint8_t* pixels) {
  static CnnOpResolver resolver;
  static bool registered = RegisterCnnOperators(resolver) == kTfLiteOk;
  if (!registered) return -1;

  const tflite::Model* model = tflite::GetModel(g_cnn_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("model schema %d, TFLM reads %d", static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return -1;
  }
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kCnnTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    MicroPrintf("the tensor arena of %u bytes is too small", kCnnTensorArenaSize);
    return -1;
  }

  // The model takes values in [0, 1] quantized to int8 with the input tensor's scale and zero point.
  TfLiteTensor* input = interpreter.input(0);
  for (int i = 0; i < kCnnInputHeight * kCnnInputWidth; ++i) {
    const float value = pixels[i] / 255.0f;
    int quantized = static_cast<int>(value / input->params.scale + 0.5f) + input->params.zero_point;
    quantized = quantized < -128 ? -128 : (quantized > 127 ? 127 : quantized);
    input->data.int8[i] = static_cast<int8_t>(quantized);
  }
  if (interpreter.Invoke() != kTfLiteOk) return -1;

  // The scores are int8 probabilities: the largest one is the digit.
  const TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int c = 1; c < kCnnClassCount; ++c) {
    if (output->data.int8[c] > output->data.int8[best]) best = c;
  }
  const float confidence = (output->data.int8[best] - output->params.zero_point) * output->params.scale;
  MicroPrintf("digit %d (probability %d%%), arena used %u of %u bytes", best, static_cast<int>(confidence * 100),
              static_cast<unsigned>(interpreter.arena_used_bytes()), kCnnTensorArenaSize);
  return best;
}

int main() {
  tflite::InitializeTarget();
  return ReadDigit(image) >= 0 ? 0 : 1;
}
