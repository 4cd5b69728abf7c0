// COMPILE-ONLY STAND-IN, NOT TFLM: see docs/micro/tflm_interface/README.md.
#ifndef MNIST_EDGE_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define MNIST_EDGE_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

#include "tensorflow/lite/micro/micro_op_resolver.h"

namespace tflite {

// The Add methods mnist_edge.export.micro.RESOLVER_METHODS can generate.
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddAdd();
  TfLiteStatus AddAveragePool2D();
  TfLiteStatus AddConcatenation();
  TfLiteStatus AddConv2D();
  TfLiteStatus AddDepthwiseConv2D();
  TfLiteStatus AddDequantize();
  TfLiteStatus AddExpandDims();
  TfLiteStatus AddFullyConnected();
  TfLiteStatus AddHardSwish();
  TfLiteStatus AddLeakyRelu();
  TfLiteStatus AddLogistic();
  TfLiteStatus AddMaxPool2D();
  TfLiteStatus AddMean();
  TfLiteStatus AddMul();
  TfLiteStatus AddPad();
  TfLiteStatus AddQuantize();
  TfLiteStatus AddRelu();
  TfLiteStatus AddRelu6();
  TfLiteStatus AddReshape();
  TfLiteStatus AddSoftmax();
  TfLiteStatus AddSqueeze();
  TfLiteStatus AddStridedSlice();
  TfLiteStatus AddSub();
  TfLiteStatus AddTanh();
  TfLiteStatus AddTranspose();
};

}  // namespace tflite

#endif
