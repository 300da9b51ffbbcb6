#ifndef NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_
#define NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_

// The CUDA implementations of the kernels of kernels/kernels.h, as the
// launcher sees them: for valid params, which __global__ function to launch
// and with what shape (core/kernel_def.h). The kernels follow the numerics of
// kernels/norm_numerics.h, so they agree with the CPU reference bit for bit.

#include <string>

#include "core/kernel_def.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {

// RmsNormParams (kernels/rms_norm_params.h).
void PlanRmsNormCuda(const void* params, CudaLaunch* launch);
// CopyParams.
void PlanCopyCuda(const void* params, CudaLaunch* launch);

// --- for tests and benchmarks
// -------------------------------------------------

// Forces the row-norm launch layout (kernels/cuda/row_layout.h) of every
// later plan: `chunks_per_thread` K (1, 2 or 4: the
// register-cached kernel, with blocks of about `block_threads` threads, 0: the
// default), -1 for the streaming kernel, 0 for the automatic choice (the
// default). A K that does not fit a row falls back to the automatic choice.
// `max_blocks` > 0 caps the grid of the register-cached kernel (its blocks
// then walk several row groups each, through the pipeline that persistent
// blocks use; with clusters, it caps the clusters). `cluster`: how many CTAs
// (a thread-block cluster, sm_90 and later) each row of a K = 1 launch is
// split over: 0 the automatic choice (decode-sized launches on GPUs with
// clusters), 1 never, 2, 4 or 8 that many where each CTA keeps 64 threads
// (else 1). Process-wide; not for use while another thread plans launches.
void SetRmsNormLayoutOverride(int chunks_per_thread, int block_threads = 0,
                              int max_blocks = 0, int cluster = 0);

// Whether later plans ask for programmatic dependent launch
// (CudaLaunch::programmatic_dependency). On by default; the environment
// variable NORMGRAPH_CUDA_PDL=0 turns the default off. A graph keeps what it
// was captured with; rebinding its nodes needs the same setting as at capture
// (under ReplayPolicy::kRebind, CapturedGraph recaptures instead).
void SetProgrammaticDependentLaunch(bool enabled);
bool ProgrammaticDependentLaunch();

// Whether later plans may give a gated K = 1 launch of more than 16 row
// groups whose CTAs all fit on the GPU at once, and that is not spread
// (SetSpreadDecodeLaunches), the kernel with 128 registers a thread instead
// of 64, with programmatic dependent launch (the "wide" form,
// kernels/cuda/rms_norm_kernels.h: faster decode). On by default; off
// for comparisons. Process-wide, like the override above; as with PDL, a
// graph keeps what it was captured with, and rebinding its nodes needs the
// same setting as at capture.
void SetWideGatedKernels(bool enabled);

// Whether later plans may spread a K = 1 launch of more than 16 row groups
// that are at most one per SM: programmatic dependent launch with dynamic
// shared memory the kernel does not use, so that an SM holds one of its CTAs
// at a time (faster decode chains at batch 17-132: kernels.cu,
// SpreadLaunch). On by default, with programmatic dependent launch; the
// environment variable NORMGRAPH_CUDA_SPREAD=0 turns the default off.
// Process-wide; a graph keeps what it was captured with, and rebinding its
// nodes needs the same setting as at capture.
void SetSpreadDecodeLaunches(bool enabled);

// Whether later plans may give a prefill launch with a residual (no gate),
// 16-bit activations and K = 4 rows of 1024 or 2048 chunks (hidden 8185-8192
// and 16377-16384), whose blocks walk several rows, the staged kernel, which
// copies each block's next row into shared memory instead of registers
// (rms_norm_kernels.h, kStagedForm: the fused add 1.04-1.18x faster there on
// the H200). On by default; the environment variable NORMGRAPH_CUDA_STAGED=0
// turns the default off. Process-wide; a graph keeps what it was captured
// with, and rebinding its nodes needs the same setting as at capture.
void SetStagedResidualRows(bool enabled);

// Whether later plans may give a gated launch with bf16 activations and K = 4
// whose blocks walk many row groups (prefill) the kernels that take silu from
// a table in shared memory (rms_norm_kernels.h, kSiluTableForm; the same
// bits). On by default; the environment variable NORMGRAPH_CUDA_SILU_TABLE=0
// turns the default off. Process-wide; a graph keeps what it was captured
// with, and rebinding its nodes needs the same setting as at capture.
void SetSiluTableRows(bool enabled);

// "K=4 G=128 rows/block=2 block=256 grid=512 cluster=1 pdl": the launch the
// current settings plan for `params` (" wide" for the wide form, " spread"
// for a spread launch, " empty-slots" for rows of C < P chunks whose K = 4
// kernel checks its upper slots for a chunk: rms_norm_kernels.h,
// kEmptySlotsForm; " staged" for the staged kernels, " silu-table" for those
// with the silu table).
std::string DescribeRmsNormLaunch(const RmsNormParams& params);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_
