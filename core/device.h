#ifndef NORMGRAPH_CORE_DEVICE_H_
#define NORMGRAPH_CORE_DEVICE_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace normgraph {

// Where a storage lives and where a stream runs.
enum class DeviceType { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;

  static Device Cpu() { return Device{DeviceType::kCpu, 0}; }
  static Device Cuda(int index) { return Device{DeviceType::kCuda, index}; }

  bool operator==(const Device& o) const {
    return type == o.type && index == o.index;
  }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string ToString() const {
    return type == DeviceType::kCpu ? std::string("cpu")
                                    : absl::StrCat("cuda:", index);
  }
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_DEVICE_H_
