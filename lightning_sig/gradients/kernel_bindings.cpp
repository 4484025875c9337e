// The Python module of the compiled gradient-statistics kernels (built by radix_build.py):
// radix_table (radix_kernel.cpp), log10_histograms (log10_histogram.cpp), and the per-step row
// copies copy_into_row, data_gradient_into_row and StepRows (row_copy.cpp), and the
// SaturationMonitor's saturation_sums_from_output (saturation_sums.cpp).
#include "row_copy.h"

#include <torch/extension.h>

#include <vector>

std::vector<torch::Tensor> radix_table(std::vector<torch::Tensor> parts, torch::Tensor sizes_t,
                                       int64_t rows, torch::Tensor levels_t, int64_t tkey,
                                       bool with_total, bool is_signed);
std::vector<torch::Tensor> log10_histograms(torch::Tensor values, torch::Tensor counts_t,
                                            torch::Tensor limits_t, bool with_total);
void copy_into_row(std::vector<torch::Tensor> parts, torch::Tensor row);
void data_gradient_into_row(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                            double r, torch::Tensor row);
torch::Tensor saturation_sums_from_output(torch::Tensor y, bool is_tanh, double limit);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("radix_table", &radix_table, "exact order statistics and moments of float32 rows");
  m.def("log10_histograms", &log10_histograms,
        "TensorBoard histograms of float32 log10 values, per segment");
  m.def("copy_into_row", &copy_into_row, "float32 tensors one after another into a row");
  m.def("data_gradient_into_row", &data_gradient_into_row,
        "g - theta * float(r) of float32 tensors into a row (torch's float32 values)");
  pybind11::class_<StepRows>(m, "StepRows")
      .def(pybind11::init<std::vector<torch::Tensor>, std::vector<torch::Tensor>>())
      .def("record", &StepRows::record,
           "one steady step's gradient (and g - theta * float(r)) into buffer rows, or false");
  m.def("saturation_sums_from_output", &saturation_sums_from_output,
        "(count, saturated count, sum of f') from tanh or logistic outputs, one pass");
}
