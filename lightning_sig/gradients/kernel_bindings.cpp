// The Python module of the compiled gradient-statistics kernels (built by radix_build.py):
// radix_table (radix_kernel.cpp) and log10_histograms (log10_histogram.cpp).
#include <torch/extension.h>

#include <vector>

std::vector<torch::Tensor> radix_table(std::vector<torch::Tensor> parts, torch::Tensor sizes_t,
                                       int64_t rows, torch::Tensor levels_t, int64_t tkey,
                                       bool with_total, bool is_signed);
std::vector<torch::Tensor> log10_histograms(torch::Tensor values, torch::Tensor counts_t,
                                            torch::Tensor limits_t, bool with_total);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("radix_table", &radix_table, "exact order statistics and moments of float32 rows");
  m.def("log10_histograms", &log10_histograms,
        "TensorBoard histograms of float32 log10 values, per segment");
}
