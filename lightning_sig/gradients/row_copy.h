// The step lane's compiled part (row_copy.cpp): declared here for its Python binding
// (kernel_bindings.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

class StepRows {
 public:
  StepRows(std::vector<torch::Tensor> params, std::vector<torch::Tensor> absent);
  bool record(double r, torch::Tensor rows_g, c10::optional<torch::Tensor> rows_d,
              int64_t index);

 private:
  std::vector<torch::Tensor> params_, absent_;
  std::vector<torch::Tensor> grads_;  // this step's gradients (a reused vector)
};
