"""backend_cc_test: one test source, run against every backend (core/testing/backends.h).

    backend_cc_test(name = "foo_test", srcs = [...], deps = [...])

defines
  foo_test       a cc_test on the CPU backend, part of `bazel test //...`;
  foo_test_cuda  the same source linked with the CUDA backend (//core/cuda:runtime), tagged `gpu`:
                 built by `--config=cuda`, bundled by tools/gpu_bundle.sh, run on a GPU host, where
                 its backend-parameterized suites run on the CPU and on cuda:0.
"""

def backend_cc_test(name, deps = [], tags = [], **kwargs):
    native.cc_test(
        name = name,
        deps = deps,
        tags = tags,
        **kwargs
    )
    native.cc_test(
        name = name + "_cuda",
        deps = deps + ["//core/cuda:runtime"],
        tags = tags + ["gpu"],
        **kwargs
    )
