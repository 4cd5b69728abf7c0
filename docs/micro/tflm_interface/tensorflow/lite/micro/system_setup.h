// COMPILE-ONLY STAND-IN, NOT TFLM: see docs/micro/tflm_interface/README.md.
#ifndef MNIST_EDGE_STUB_SYSTEM_SETUP_H_
#define MNIST_EDGE_STUB_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif
