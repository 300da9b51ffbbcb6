#include "core/testing/backends.h"

#include "absl/strings/str_cat.h"
#include "core/tensor_util.h"

namespace normgraph {

std::vector<Device> TestDevices() {
  std::vector<Device> devices = {Device::Cpu()};
  if (BackendLinked(DeviceType::kCuda)) devices.push_back(Device::Cuda(0));
  return devices;
}

void PrintTo(const Device& device, std::ostream* os) {
  *os << device.ToString();
}

std::string DeviceParamName(const ::testing::TestParamInfo<Device>& info) {
  return info.param.type == DeviceType::kCpu
             ? "cpu"
             : absl::StrCat("cuda", info.param.index);
}

void BackendTest::SetUp() {
  absl::StatusOr<DeviceRuntime*> runtime = GetRuntime(GetParam());
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  runtime_ = *runtime;
  absl::StatusOr<std::unique_ptr<Stream>> stream = runtime_->NewStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  stream_ = *std::move(stream);
}

Tensor BackendTest::Empty(Shape shape, DType dtype) {
  absl::StatusOr<Tensor> t =
      Tensor::Empty(allocator(), std::move(shape), dtype);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : Tensor();
}

Tensor BackendTest::FromFloats(Shape shape, DType dtype,
                               const std::vector<float>& values) {
  Tensor t = Empty(shape, dtype);
  absl::Status ok = CopyInto(HostView{values.data(), DType::kF32, shape}, t);
  EXPECT_TRUE(ok.ok()) << ok;
  return t;
}

Tensor BackendTest::Random(Shape shape, DType dtype, uint64_t seed, float mean,
                           float stddev) {
  Tensor t = Empty(std::move(shape), dtype);
  absl::Status ok = FillNormal(t, seed, mean, stddev);
  EXPECT_TRUE(ok.ok()) << ok;
  return t;
}

}  // namespace normgraph
