#ifndef NORMGRAPH_CORE_TESTING_BACKENDS_H_
#define NORMGRAPH_CORE_TESTING_BACKENDS_H_

// Backend-parameterized tests: one test source holds every backend to the
// same expectations, the way ggml's test-backend-ops holds each backend
// against the CPU one.
//
//   class MyTest : public BackendTest {};
//   TEST_P(MyTest, Works) { Tensor t = Empty({4}, DType::kBF16); ... stream() }
//   NG_INSTANTIATE_BACKEND_TEST(MyTest);
//
// A `backend_cc_test` (tools/testing/backend_test.bzl) builds each such source
// twice: `name` runs on the CPU; `name_cuda` (tagged gpu, built with
// --config=cuda, run on a GPU host) links the CUDA backend and runs on the CPU
// and on cuda:0. In the CUDA binary a missing or broken GPU fails the tests;
// nothing is skipped.

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/runtime.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "gtest/gtest.h"

namespace normgraph {

// The devices this binary tests: the CPU, and cuda:0 where the CUDA backend is
// linked in.
std::vector<Device> TestDevices();

// gtest prints a Device parameter as "cpu" / "cuda:0".
void PrintTo(const Device& device, std::ostream* os);

// "cpu", "cuda0": gtest parameter names.
std::string DeviceParamName(const ::testing::TestParamInfo<Device>& info);

// A fixture over one device: its runtime, a stream, tensor helpers.
class BackendTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override;

  Device device() const { return GetParam(); }
  bool on_cuda() const { return GetParam().type == DeviceType::kCuda; }
  DeviceRuntime& runtime() { return *runtime_; }
  Allocator& allocator() { return runtime_->allocator(); }
  Stream& stream() { return *stream_; }

  // A new contiguous tensor on the device (fails the test on error).
  Tensor Empty(Shape shape, DType dtype);
  // A new tensor on the device holding `values` (rounded to `dtype`).
  Tensor FromFloats(Shape shape, DType dtype, const std::vector<float>& values);
  // A new tensor on the device with normally distributed values.
  Tensor Random(Shape shape, DType dtype, uint64_t seed, float mean = 0.0f,
                float stddev = 1.0f);

 private:
  DeviceRuntime* runtime_ = nullptr;
  std::unique_ptr<Stream> stream_;
};

}  // namespace normgraph

#define NG_INSTANTIATE_BACKEND_TEST(fixture)                                \
  INSTANTIATE_TEST_SUITE_P(Backends, fixture,                               \
                           ::testing::ValuesIn(::normgraph::TestDevices()), \
                           ::normgraph::DeviceParamName)

#endif  // NORMGRAPH_CORE_TESTING_BACKENDS_H_
