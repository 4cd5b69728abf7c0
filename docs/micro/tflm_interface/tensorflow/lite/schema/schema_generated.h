// COMPILE-ONLY STAND-IN, NOT TFLM: see docs/micro/tflm_interface/README.md.
#ifndef MNIST_EDGE_STUB_SCHEMA_GENERATED_H_
#define MNIST_EDGE_STUB_SCHEMA_GENERATED_H_

#include <cstdint>

namespace tflite {

struct Model {
  uint32_t version() const;
};

const Model* GetModel(const void* buffer);

}  // namespace tflite

#endif
