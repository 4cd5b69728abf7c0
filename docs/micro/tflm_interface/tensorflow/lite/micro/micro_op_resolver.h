// COMPILE-ONLY STAND-IN, NOT TFLM: see docs/micro/tflm_interface/README.md.
#ifndef MNIST_EDGE_STUB_MICRO_OP_RESOLVER_H_
#define MNIST_EDGE_STUB_MICRO_OP_RESOLVER_H_

#include <cstddef>
#include <cstdint>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef union TfLitePtrUnion {
  int8_t* int8;
  uint8_t* uint8;
  float* f;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  TfLitePtrUnion data;
  TfLiteQuantizationParams params;
  size_t bytes;
} TfLiteTensor;

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() = default;
};

}  // namespace tflite

#endif
