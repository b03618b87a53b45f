#include "model/documents.h"

#include "common/error.h"

namespace extrap {

DocumentOptions document_options(const DataConfig& data, const nlohmann::json& metadata, const std::string& dataset) {
  DocumentOptions options{data.reset_positions, data.mask_documents};
  if (!options.active()) return options;
  const auto tokenizer = metadata.find("tokenizer");
  if (tokenizer == metadata.end() || !tokenizer->is_object() || !tokenizer->contains("end_of_text") ||
      !tokenizer->at("end_of_text").is_number_integer()) {
    throw UserError(dataset + ": metadata.json has no tokenizer.end_of_text, the token that data.reset_positions "
                              "and data.mask_documents need to find where documents start");
  }
  options.end_of_text = tokenizer->at("end_of_text").get<int64_t>();
  return options;
}

torch::Tensor document_starts(const torch::Tensor& tokens, int64_t end_of_text) {
  TORCH_CHECK(tokens.dim() == 2, "document_starts: expected tokens [B, T], got ", tokens.sizes());
  const auto index = torch::arange(tokens.size(1), tokens.options().dtype(torch::kLong)).expand_as(tokens);
  // Each token's own index where it opens a document (an EOT; token 0 has index 0 anyway), else 0:
  // the running maximum is the latest opening at or before it.
  const auto opened = torch::where(tokens == end_of_text, index, torch::zeros_like(index));
  return std::get<0>(opened.cummax(1));
}

Positions reset_positions(const Positions& base, const torch::Tensor& starts) {
  TORCH_CHECK(!base.per_row() && base.size() == starts.size(1), "reset_positions: expected one row of ",
              starts.size(1), " base positions");
  const auto in_document = torch::arange(starts.size(1), starts.options()) - starts;  // t - start[b, t]
  return Positions{base.values.index_select(0, in_document.reshape(-1)).view(in_document.sizes()), false};
}

DocumentStarts DocumentMask::view() const {
  if (!defined()) return {};
  return {host_starts.data_ptr<int64_t>(), host_starts.size(0), host_starts.size(1)};
}

WindowLayout window_layout(const torch::Tensor& tokens, const Positions& base, const DocumentOptions& options) {
  if (!options.active()) return {base, {}};
  const auto starts = document_starts(tokens, options.end_of_text);
  const auto host = starts.to(torch::kCPU).contiguous();
  // No row has a second document: the plain layout (shared positions, cached tables, no mask).
  if (host.max().item<int64_t>() == 0) return {base, {}};
  WindowLayout layout{base, {}};
  if (options.reset_positions) layout.positions = reset_positions(base, starts);
  if (options.mask_documents) layout.documents = {starts, host};
  return layout;
}

}  // namespace extrap
