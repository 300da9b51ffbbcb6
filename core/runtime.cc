#include "core/runtime.h"

#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/cpu_stream.h"

namespace normgraph {
namespace {

class CpuDeviceRuntime final : public DeviceRuntime {
 public:
  Device device() const override { return Device::Cpu(); }
  std::string Describe() const override { return "cpu"; }
  Allocator& allocator() override { return CpuAllocator(); }
  absl::StatusOr<std::unique_ptr<Stream>> NewStream() override {
    return std::unique_ptr<Stream>(new CpuStream);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memmove(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memmove(dst, src, bytes);
    return absl::OkStatus();
  }
};

struct Registry {
  absl::Mutex mu;
  std::map<DeviceType, RuntimeFactory> factories ABSL_GUARDED_BY(mu);
  std::map<std::pair<DeviceType, int>, DeviceRuntime*> runtimes
      ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static auto* registry = new Registry;
  return *registry;
}

}  // namespace

DeviceRuntime& CpuRuntime() {
  static auto* runtime = new CpuDeviceRuntime;
  return *runtime;
}

bool RegisterRuntimeFactory(DeviceType type, RuntimeFactory factory) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  r.factories[type] = factory;
  return true;
}

bool BackendLinked(DeviceType type) {
  if (type == DeviceType::kCpu) return true;
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  return r.factories.count(type) > 0;
}

absl::StatusOr<DeviceRuntime*> GetRuntime(Device device) {
  if (device.type == DeviceType::kCpu) {
    if (device.index != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device ", device.ToString(), ": there is one cpu"));
    }
    return &CpuRuntime();
  }
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto made = r.runtimes.find({device.type, device.index});
  if (made != r.runtimes.end()) return made->second;
  auto factory = r.factories.find(device.type);
  if (factory == r.factories.end()) {
    return absl::UnavailableError(absl::StrCat(
        "device ", device.ToString(),
        " is not available: this binary was built without the CUDA backend "
        "(build it with --config=cuda, or use the GPU bundle)"));
  }
  absl::StatusOr<DeviceRuntime*> runtime = factory->second(device.index);
  if (!runtime.ok()) return runtime.status();
  r.runtimes[{device.type, device.index}] = *runtime;
  return *runtime;
}

absl::StatusOr<DeviceRuntime*> RuntimeOf(const Storage& storage) {
  return GetRuntime(storage.device());
}

absl::StatusOr<Device> ParseDevice(absl::string_view text) {
  if (text == "cpu") return Device::Cpu();
  if (text == "cuda") return Device::Cuda(0);
  int index = 0;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "cuda:") && absl::SimpleAtoi(rest, &index) &&
      index >= 0) {
    return Device::Cuda(index);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown device '", text, "': expected cpu, cuda or cuda:N"));
}

}  // namespace normgraph
