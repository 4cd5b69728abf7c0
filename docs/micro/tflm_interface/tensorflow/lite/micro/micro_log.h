// COMPILE-ONLY STAND-IN, NOT TFLM: see docs/micro/tflm_interface/README.md.
#ifndef MNIST_EDGE_STUB_MICRO_LOG_H_
#define MNIST_EDGE_STUB_MICRO_LOG_H_

void MicroPrintf(const char* format, ...);

#endif
