#include "resumable/model/model.h"

#include <algorithm>
#include <cmath>

#include <torch/autograd.h>

#include "resumable/data/vocabulary.h"

namespace resumable {

namespace F = torch::nn::functional;

ModelOptions model_options(const TrainConfig& cfg, int64_t source_vocab, int64_t target_vocab) {
  ModelOptions o;
  o.source_vocab = source_vocab;
  o.target_vocab = target_vocab;
  o.d_model = cfg.d_model;
  o.heads = cfg.heads;
  o.encoder_layers = cfg.encoder_layers;
  o.decoder_layers = cfg.decoder_layers;
  o.ff_dim = cfg.ff_dim;
  o.dropout = cfg.dropout;
  o.right_to_left = targets_right_to_left(cfg);
  return o;
}

TokenPacking TokenPacking::of(const at::Tensor& ids) {
  return of_index(ids.reshape({-1}).ne(Vocabulary::kPad).nonzero().squeeze(1), ids.size(0), ids.size(1));
}

TokenPacking TokenPacking::of_index(const at::Tensor& index, int64_t batch, int64_t length) {
  return {index, index.div(length, "floor"), index.remainder(length), batch, length};
}

at::Tensor TokenPacking::pad_heads(const at::Tensor& rows, int64_t groups, int64_t heads) const {
  const int64_t n = rows.size(0), d = rows.size(1) / (groups * heads);
  // Indexed as [B,L,G,H,D] (what the rows hold), stored as [G,B,H,L,D]. Not a view: an in-place
  // scatter into a view would make autograd copy the whole base in backward.
  auto padded = at::empty_strided({batch, length, groups, heads, d},
                                  {heads * length * d, d, batch * heads * length * d, length * d, 1}, rows.options())
                    .zero_();
  padded.index_put_({word, token}, rows.view({n, groups, heads, d}));
  return padded.permute({2, 0, 3, 1, 4});
}

namespace {

// The rows of a [B,L,...] tensor at a packing's positions. Its backward scatters them into zeros
// laid out as the input was; autograd's own backward for index accumulates (serially on the CPU,
// through a sort on CUDA), which a packing's distinct positions never need.
struct GatherTokens : torch::autograd::Function<GatherTokens> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& padded, const at::Tensor& word,
                            const at::Tensor& token) {
    ctx->save_for_backward({word, token});
    ctx->saved_data["sizes"] = padded.sizes().vec();
    ctx->saved_data["strides"] = padded.is_non_overlapping_and_dense() ? padded.strides().vec() : std::vector<int64_t>{};
    return padded.index({word, token});
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto sizes = ctx->saved_data["sizes"].toIntVector(), strides = ctx->saved_data["strides"].toIntVector();
    auto grad = (strides.empty() ? at::empty(sizes, grads[0].options())
                                 : at::empty_strided(sizes, strides, grads[0].options()))
                    .zero_();
    grad.index_put_({saved[0], saved[1]}, grads[0]);
    return {grad, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor TokenPacking::pack_heads(const at::Tensor& heads) const {
  auto rows = GatherTokens::apply(heads.transpose(1, 2), word, token);  // [N,H,D]
  return rows.view({rows.size(0), -1});
}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(int64_t d_model, int64_t heads) : heads_(heads) {
  q_ = register_module("q", torch::nn::Linear(d_model, d_model));
  kv_ = register_module("kv", torch::nn::Linear(d_model, 2 * d_model));
  out_ = register_module("out", torch::nn::Linear(d_model, d_model));
}

torch::Tensor MultiHeadAttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& memory,
                                              const torch::Tensor& key_mask, bool causal,
                                              const TokenPacking* query_packing, const TokenPacking* memory_packing) {
  // Projections run on whatever rows there are; only the attention itself needs [B,T,...].
  auto q = q_(query);
  auto kv = kv_(memory);
  const int64_t d = q.size(-1), hd = d / heads_;
  // [B,H,T,D] views: head-major in memory where a packing pads them, strided views otherwise.
  auto qh = query_packing ? query_packing->pad_heads(q, 1, heads_).squeeze(0)
                          : q.view({q.size(0), q.size(1), heads_, hd}).transpose(1, 2);
  auto kvh = memory_packing ? memory_packing->pad_heads(kv, 2, heads_)
                            : kv.view({kv.size(0), kv.size(1), 2, heads_, hd}).permute({2, 0, 3, 1, 4});
  // unbind, not [0] and [1]: its backward is one stack, where two selects each fill a zero
  // [2,B,H,T,D] and the two are then added.
  auto kv_heads = kvh.unbind(0);
  const int64_t b = qh.size(0), tq = qh.size(2);
  std::optional<torch::Tensor> mask;
  if (key_mask.defined()) mask = key_mask;
  auto y = attention(kernel_, qh, kv_heads[0], kv_heads[1], mask, causal);
  return out_(query_packing ? query_packing->pack_heads(y) : y.transpose(1, 2).reshape({b, tq, d}));
}

FeedForwardImpl::FeedForwardImpl(int64_t d_model, int64_t ff_dim) {
  in_ = register_module("in", torch::nn::Linear(d_model, ff_dim));
  out_ = register_module("out", torch::nn::Linear(ff_dim, d_model));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) { return out_(F::gelu(in_(x))); }

EncoderLayerImpl::EncoderLayerImpl(const ModelOptions& o) {
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  attention_ = register_module("attention", MultiHeadAttention(o.d_model, o.heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  ff_ = register_module("ff", FeedForward(o.d_model, o.ff_dim));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                                        const TokenPacking* packing) {
  auto h = norm1_(x);
  auto y = x + dropout_(attention_(h, h, key_mask, false, packing, packing));
  return y + dropout_(ff_(norm2_(y)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelOptions& o) {
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  self_attention_ = register_module("self_attention", MultiHeadAttention(o.d_model, o.heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  cross_attention_ = register_module("cross_attention", MultiHeadAttention(o.d_model, o.heads));
  norm3_ = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  ff_ = register_module("ff", FeedForward(o.d_model, o.ff_dim));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& memory,
                                        const torch::Tensor& memory_mask, const TokenPacking* packing,
                                        const TokenPacking* memory_packing) {
  // Targets are padded at the end, so the causal mask alone keeps real positions off padding.
  auto h = norm1_(x);
  auto y = x + dropout_(self_attention_(h, h, torch::Tensor(), true, packing, packing));
  y = y + dropout_(cross_attention_(norm2_(y), memory, memory_mask, false, packing, memory_packing));
  return y + dropout_(ff_(norm3_(y)));
}

G2PTransformerImpl::G2PTransformerImpl(const ModelOptions& o) : options_(o) {
  source_embedding_ = register_module("source_embedding", torch::nn::Embedding(o.source_vocab, o.d_model));
  target_embedding_ = register_module("target_embedding", torch::nn::Embedding(o.target_vocab, o.d_model));
  encoder_ = register_module("encoder", torch::nn::ModuleList());
  decoder_ = register_module("decoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.encoder_layers; ++i) encoder_->push_back(EncoderLayer(o));
  for (int64_t i = 0; i < o.decoder_layers; ++i) decoder_->push_back(DecoderLayer(o));
  encoder_norm_ = register_module("encoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  decoder_norm_ = register_module("decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));

  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("embedding") != std::string::npos)
      torch::nn::init::normal_(p.value(), 0.0, std::pow(static_cast<double>(o.d_model), -0.5));
    else if (p.value().dim() == 2)
      torch::nn::init::xavier_uniform_(p.value());
    else if (p.key().find("bias") != std::string::npos && p.key().find("norm") == std::string::npos)
      p.value().zero_();
  }
}

void G2PTransformerImpl::set_attention_kernel(AttentionKernel k) {
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* a = m->as<MultiHeadAttentionImpl>()) a->set_kernel(k);
}

torch::Tensor G2PTransformerImpl::positions(int64_t length, const torch::Device& device, c10::ScalarType dtype) {
  if (!position_table_.defined() || position_table_.size(0) < length || position_table_.device() != device) {
    int64_t n = std::max<int64_t>(length, 64), d = options_.d_model;
    auto pos = torch::arange(n, torch::kDouble).unsqueeze(1);
    auto freq = torch::exp(torch::arange(0, d, 2, torch::kDouble) * (-std::log(10000.0) / static_cast<double>(d)));
    auto table = torch::zeros({n, d}, torch::kDouble);
    table.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 2)}, torch::sin(pos * freq));
    table.index_put_({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None, 2)},
                     torch::cos(pos * freq).narrow(1, 0, d / 2));
    position_table_ = table.to(device, torch::kFloat);
  }
  return position_table_.narrow(0, 0, length).to(dtype);
}

torch::Tensor G2PTransformerImpl::embed(torch::nn::Embedding& table, const torch::Tensor& ids,
                                        const TokenPacking* packing) {
  const double scale = std::sqrt(static_cast<double>(options_.d_model));
  if (!packing) {
    auto x = table(ids) * scale;
    return dropout_(x + positions(ids.size(1), x.device(), x.scalar_type()));
  }
  auto x = table(ids.reshape({-1}).index_select(0, packing->index)) * scale;
  auto pos = positions(ids.size(1), x.device(), x.scalar_type()).index_select(0, packing->token);
  return dropout_(x + pos);
}

torch::Tensor G2PTransformerImpl::encode(const torch::Tensor& source, torch::Tensor& key_mask,
                                         const TokenPacking* packing) {
  key_mask = source.ne(Vocabulary::kPad).view({source.size(0), 1, 1, source.size(1)});
  auto x = embed(source_embedding_, source, packing);
  for (auto& layer : *encoder_) x = layer->as<EncoderLayer>()->forward(x, key_mask, packing);
  return encoder_norm_(x);
}

torch::Tensor G2PTransformerImpl::decode(const torch::Tensor& target_in, const torch::Tensor& memory,
                                         const torch::Tensor& key_mask, const TokenPacking* packing,
                                         const TokenPacking* memory_packing) {
  auto y = embed(target_embedding_, target_in, packing);
  for (auto& layer : *decoder_)
    y = layer->as<DecoderLayer>()->forward(y, memory, key_mask, packing, memory_packing);
  // Output projection tied to the target embedding.
  return torch::matmul(decoder_norm_(y), target_embedding_->weight.t());
}

torch::Tensor G2PTransformerImpl::forward(const torch::Tensor& source, const torch::Tensor& target_in) {
  torch::Tensor key_mask;
  auto memory = encode(source, key_mask);
  return decode(target_in, memory, key_mask);
}

G2PTransformerImpl::PackedLogits G2PTransformerImpl::forward_packed(const torch::Tensor& source,
                                                                    const torch::Tensor& target_in,
                                                                    const torch::Tensor& source_tokens,
                                                                    const torch::Tensor& target_tokens) {
  auto packing = [](const torch::Tensor& ids, const torch::Tensor& tokens) {
    return tokens.defined() ? TokenPacking::of_index(tokens, ids.size(0), ids.size(1)) : TokenPacking::of(ids);
  };
  TokenPacking source_packing = packing(source, source_tokens), target_packing = packing(target_in, target_tokens);
  torch::Tensor key_mask;
  auto memory = encode(source, key_mask, &source_packing);
  return {decode(target_in, memory, key_mask, &target_packing, &source_packing), target_packing.index};
}

G2PTransformerImpl::Encoded G2PTransformerImpl::Encoded::repeat_rows(int64_t k) const {
  return {memory.repeat_interleave(k, 0), key_mask.repeat_interleave(k, 0)};
}

G2PTransformerImpl::Encoded G2PTransformerImpl::encode_source(const torch::Tensor& source) {
  Encoded e;
  e.memory = encode(source, e.key_mask);
  return e;
}

torch::Tensor G2PTransformerImpl::next_logits(const torch::Tensor& prefixes, const Encoded& encoded) {
  return decode(prefixes, encoded.memory, encoded.key_mask).select(1, prefixes.size(1) - 1);
}

}  // namespace resumable
