#ifndef NORMGRAPH_KERNELS_FLOAT_NEIGHBOURS_TESTING_H_
#define NORMGRAPH_KERNELS_FLOAT_NEIGHBOURS_TESTING_H_

// Test helpers for the rounding guard of numerics::RoundsLikeNeighbours:
// float64 values a given number of ulps away, and float32 rounding midpoints.

#include <cmath>

namespace normgraph {

// y moved by k float64 ulps (k may be negative), staying finite.
inline double MovedUlps(double y, int k) {
  for (int i = 0; i < (k < 0 ? -k : k); ++i) {
    y = std::nextafter(y, k < 0 ? 0.0 : INFINITY);
  }
  return y;
}

// The midpoint between float32 f and the next float32 up, exact in float64.
inline double MidpointAbove(float f) {
  return (static_cast<double>(f) +
          static_cast<double>(std::nextafter(f, INFINITY))) /
         2;
}

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_FLOAT_NEIGHBOURS_TESTING_H_
