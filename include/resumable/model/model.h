// The G2P model: a pre-norm Transformer encoder-decoder over characters (in) and ARPAbet
// phonemes (out), with sinusoidal positions and the output projection tied to the target
// embedding. Attention runs the kernel set_attention_kernel() chose (attention_kernel.h): by
// default at::scaled_dot_product_attention's fused kernels.
// Dropout acts on embeddings and residual branches only (fairseq's defaults: no attention or
// activation dropout); on CPU, dropout masks are a sizeable part of a step's time.
// Training runs on packed tokens (forward_packed): a batch of words is about half padding, and
// every layer but attention works token by token, so only attention sees the padded layout.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "resumable/config/config.h"
#include "resumable/model/attention_kernel.h"

namespace resumable {

struct ModelOptions {
  int64_t source_vocab = 0;
  int64_t target_vocab = 0;
  int64_t d_model = 128;
  int64_t heads = 4;
  int64_t encoder_layers = 2;
  int64_t decoder_layers = 2;
  int64_t ff_dim = 512;
  double dropout = 0.1;
  bool right_to_left = false;  // the phonemes are read (trained and decoded) last to first
};

// The architecture a config describes, for vocabularies of the given sizes.
ModelOptions model_options(const TrainConfig& cfg, int64_t source_vocab, int64_t target_vocab);

// Where the real tokens of a padded [B,L] batch are: their flat positions b*L+t, in row-major
// order. Rows of packed activations [N,C] follow this order.
struct TokenPacking {
  at::Tensor index;        // [N] int64
  at::Tensor word, token;  // [N] int64: index / L and index % L
  int64_t batch = 0, length = 0;

  static TokenPacking of(const at::Tensor& ids);  // ids [B,L], kPad marks padding
  static TokenPacking of_index(const at::Tensor& index, int64_t batch, int64_t length);
  // [N, G*H*D] -> [G,B,H,L,D], contiguous, zeros at padding: the head-major layout that
  // attention's batched matmuls read. The scatter that pads also lays the heads out, so no
  // transposing copy follows it, forward or backward.
  at::Tensor pad_heads(const at::Tensor& rows, int64_t groups, int64_t heads) const;
  // [B,H,L,D], any strides -> [N, H*D]: attention's output back to rows, in one gather.
  at::Tensor pack_heads(const at::Tensor& heads) const;
};

class MultiHeadAttentionImpl : public torch::nn::Module {
 public:
  MultiHeadAttentionImpl(int64_t d_model, int64_t heads);
  // query [B,Tq,D], memory [B,Tk,D]; key_mask [B,1,1,Tk] bool (true = attend) or undefined.
  // With packings, query and memory are packed rows [Nq,D] and [Nk,D], and so is the result.
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& memory, const torch::Tensor& key_mask,
                        bool causal, const TokenPacking* query_packing = nullptr,
                        const TokenPacking* memory_packing = nullptr);
  void set_kernel(AttentionKernel k) { kernel_ = k; }

 private:
  int64_t heads_;
  AttentionKernel kernel_ = AttentionKernel::kFused;
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, out_{nullptr};
};
TORCH_MODULE(MultiHeadAttention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t d_model, int64_t ff_dim);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear in_{nullptr}, out_{nullptr};
};
TORCH_MODULE(FeedForward);

class EncoderLayerImpl : public torch::nn::Module {
 public:
  EncoderLayerImpl(const ModelOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask, const TokenPacking* packing = nullptr);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  MultiHeadAttention attention_{nullptr};
  FeedForward ff_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(EncoderLayer);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& memory, const torch::Tensor& memory_mask,
                        const TokenPacking* packing = nullptr, const TokenPacking* memory_packing = nullptr);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  MultiHeadAttention self_attention_{nullptr}, cross_attention_{nullptr};
  FeedForward ff_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(DecoderLayer);

class G2PTransformerImpl : public torch::nn::Module {
 public:
  explicit G2PTransformerImpl(const ModelOptions& options);

  // Teacher forcing: source [B,S], target_in [B,T] (starting with BOS) -> logits [B,T,V].
  torch::Tensor forward(const torch::Tensor& source, const torch::Tensor& target_in);
  // Teacher forcing on real tokens only: logits [N,V] for the N non-padding positions of
  // target_in, which are also those of target_out, in row-major order; `index` holds their flat
  // positions b*T+t. Equal to forward() at those positions, at about half its cost.
  struct PackedLogits {
    torch::Tensor logits, index;
  };
  // The real tokens' positions may be given (Batch::source_tokens, target_tokens: found on the
  // CPU as the batch is made); else they are found here, which makes a GPU wait for the host.
  PackedLogits forward_packed(const torch::Tensor& source, const torch::Tensor& target_in,
                              const torch::Tensor& source_tokens = {}, const torch::Tensor& target_tokens = {});
  // Decoding's two halves, which decoding.h runs for one model or an ensemble: the encoder's
  // output for a batch of words, then the logits of the phoneme after each prefix.
  struct Encoded {
    torch::Tensor memory, key_mask;  // [B,S,D], [B,1,1,S]
    Encoded repeat_rows(int64_t k) const;  // each word's rows k times in a row, for k hypotheses
  };
  Encoded encode_source(const torch::Tensor& source);
  // prefixes [B,T] (starting with BOS) -> logits [B,V] at their last position.
  torch::Tensor next_logits(const torch::Tensor& prefixes, const Encoded& encoded);

  const ModelOptions& options() const { return options_; }
  // Every attention layer's kernel; the weights and the function computed stay the same.
  void set_attention_kernel(AttentionKernel k);

 private:
  torch::Tensor embed(torch::nn::Embedding& table, const torch::Tensor& ids, const TokenPacking* packing);
  torch::Tensor encode(const torch::Tensor& source, torch::Tensor& key_mask, const TokenPacking* packing = nullptr);
  torch::Tensor decode(const torch::Tensor& target_in, const torch::Tensor& memory, const torch::Tensor& key_mask,
                       const TokenPacking* packing = nullptr, const TokenPacking* memory_packing = nullptr);
  torch::Tensor positions(int64_t length, const torch::Device& device, c10::ScalarType dtype);

  ModelOptions options_;
  torch::nn::Embedding source_embedding_{nullptr}, target_embedding_{nullptr};
  torch::nn::ModuleList encoder_, decoder_;
  torch::nn::LayerNorm encoder_norm_{nullptr}, decoder_norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::Tensor position_table_;  // sinusoidal, cached; not a parameter or buffer
};
TORCH_MODULE(G2PTransformer);

}  // namespace resumable
