// The GradientQuantileCallback's per-step copies of a small model's gradient into its buffer
// rows (step_buffer.py), one call for all of a step's tensors. For the paper nets (1,130
// coordinates in 20 tensors) a flat torch concatenation, the flat g - r*theta in torch ops and
// the numpy copies into the rows cost more per step than the statistics of that step.
//
// copy_into_row: the tensors one after another into `row` (bit copies; fp16/bf16 upcast, sparse
// made dense, non-contiguous ones gathered).
// data_gradient_into_row: row[j] = g[j] - theta[j] * float(r), per coordinate in float32, the
// values of torch's `g - theta.mul(r)` for a float32 theta and a Python float r (the scalar is
// rounded to float32 first, then one product and one difference, each rounded; compiled with
// -ffp-contract=off: no fused multiply-add). The floating-point mode (denormals) is the
// caller's, as for torch's ops on the same thread.
#include "row_copy.h"

#include <torch/extension.h>

#include <cstring>
#include <vector>

namespace {

// t as a contiguous strided float32 tensor: itself when it is one (the usual case), else a copy
// (sparse made dense, fp16/bf16 upcast exactly)
torch::Tensor as_float32(const torch::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu() && t.is_floating_point(),
              "row_copy: every tensor must be a floating-point CPU tensor");
  if (t.dtype() == torch::kFloat32 && t.layout() == torch::kStrided && t.is_contiguous())
    return t;
  torch::Tensor c = t.layout() == torch::kStrided ? t : t.to_dense();
  return c.to(torch::kFloat32).contiguous();
}

float* checked_row(const torch::Tensor& row, int64_t n, const char* name) {
  TORCH_CHECK(row.dtype() == torch::kFloat32 && row.is_contiguous() && row.device().is_cpu(),
              name, ": the row must be a contiguous float32 CPU tensor");
  TORCH_CHECK(n == row.numel(), name, ": ", n, " values for a row of ", row.numel());
  return row.data_ptr<float>();
}

int64_t total_numel(const std::vector<torch::Tensor>& parts) {
  int64_t n = 0;
  for (const torch::Tensor& t : parts) n += t.numel();
  return n;
}

}  // namespace

void copy_into_row(std::vector<torch::Tensor> parts, torch::Tensor row) {
  float* out = checked_row(row, total_numel(parts), "copy_into_row");
  for (const torch::Tensor& part : parts) {
    const torch::Tensor t = as_float32(part);
    const int64_t n = t.numel();
    if (n) std::memcpy(out, t.data_ptr<float>(), static_cast<size_t>(n) * sizeof(float));
    out += n;
  }
}

void data_gradient_into_row(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                            double r, torch::Tensor row) {
  float* out = checked_row(row, total_numel(grads), "data_gradient_into_row");
  TORCH_CHECK(grads.size() == params.size(), "data_gradient_into_row: ", grads.size(),
              " gradients for ", params.size(), " parameters");
  const float rf = static_cast<float>(r);
  for (size_t i = 0; i < grads.size(); ++i) {
    TORCH_CHECK(grads[i].dtype() == torch::kFloat32 && params[i].dtype() == torch::kFloat32,
                "data_gradient_into_row: float32 gradients and parameters only");
    const torch::Tensor gt = as_float32(grads[i]), pt = as_float32(params[i]);
    const int64_t n = gt.numel();
    TORCH_CHECK(pt.numel() == n, "data_gradient_into_row: gradient ", i, " has ", n,
                " values, its parameter ", pt.numel());
    const float* __restrict g = gt.data_ptr<float>();
    const float* __restrict p = pt.data_ptr<float>();
    for (int64_t j = 0; j < n; ++j) out[j] = g[j] - p[j] * rf;
    out += n;
  }
}

// StepRows: the GradientQuantileCallback's lane for steady steps
// (lightning_sig/gradients/step_lane.py). Holds the layout's parameters (row order) and the
// trainable parameters that had no gradient, so that a step costs no list conversion.
// record(r, rows_g, rows_d, index): the parameters' gradients one after another into row `index`
// of `rows_g` (as copy_into_row), and, with `rows_d` given, g - theta * float(r) into row `index`
// of `rows_d` (as data_gradient_into_row: the same float32 operations). Checked first, nothing
// written when any check fails (returns false: the caller takes its general path): every
// gradient defined, strided, contiguous, float32 on the CPU with its parameter's size (the
// parameters float32 and contiguous when rows_d is given); no tensor of `absent` with a gradient
// (the layout has not changed); rows (capacity, N) contiguous float32 CPU with N the gradients'
// values and 0 <= index < capacity.
StepRows::StepRows(std::vector<torch::Tensor> params, std::vector<torch::Tensor> absent)
    : params_(std::move(params)), absent_(std::move(absent)) {
  grads_.reserve(params_.size());
}

bool StepRows::record(double r, torch::Tensor rows_g, c10::optional<torch::Tensor> rows_d,
                      int64_t index) {
  for (const torch::Tensor& p : absent_)
    if (p.grad().defined()) return false;
  const bool data = rows_d.has_value() && rows_d->defined();
  grads_.clear();
  int64_t n = 0;
  for (const torch::Tensor& p : params_) {
    const torch::Tensor& g = p.grad();
    if (!g.defined() || g.layout() != torch::kStrided || !g.is_contiguous() ||
        g.scalar_type() != torch::kFloat32 || !g.device().is_cpu() || g.numel() != p.numel())
      return false;
    if (data && (p.scalar_type() != torch::kFloat32 || !p.is_contiguous())) return false;
    grads_.push_back(g);
    n += g.numel();
  }
  auto row_ok = [&](const torch::Tensor& rows) {
    return rows.dim() == 2 && rows.scalar_type() == torch::kFloat32 && rows.is_contiguous() &&
           rows.device().is_cpu() && rows.size(1) == n && index >= 0 && index < rows.size(0);
  };
  const bool ok = row_ok(rows_g) && (!data || row_ok(*rows_d));
  if (ok) {
    float* out = rows_g.data_ptr<float>() + index * n;
    for (const torch::Tensor& g : grads_) {
      const int64_t k = g.numel();
      if (k) std::memcpy(out, g.data_ptr<float>(), static_cast<size_t>(k) * sizeof(float));
      out += k;
    }
    if (data) {
      const float rf = static_cast<float>(r);
      float* d = rows_d->data_ptr<float>() + index * n;
      for (size_t i = 0; i < grads_.size(); ++i) {
        const float* __restrict g = grads_[i].data_ptr<float>();
        const float* __restrict p = params_[i].data_ptr<float>();
        const int64_t k = grads_[i].numel();
        for (int64_t j = 0; j < k; ++j) d[j] = g[j] - p[j] * rf;
        d += k;
      }
    }
  }
  grads_.clear();  // no gradient kept alive between steps
  return ok;
}
