"""PyTorch numerical reference of the GPT-2 and Llama models the compiler
trains, built from Hugging Face config.json files.

Parameters are registered under exactly the Hugging Face checkpoint names and
layouts (GPT-2 without the `transformer.` prefix, as the gpt2 checkpoints
store them; Llama as LlamaForCausalLM), in the order the forward pass first
uses them:

  GPT-2: wte.weight [V,h], wpe.weight [P,h], h.{i}.ln_1.{weight,bias},
         h.{i}.attn.c_attn.{weight [h,3h], bias}, h.{i}.attn.c_proj.{weight
         [h,h], bias}, h.{i}.ln_2.*, h.{i}.mlp.c_fc.{weight [h,f], bias},
         h.{i}.mlp.c_proj.{weight [f,h], bias}, ln_f.*, lm_head.weight [V,h]
         only when untied. Conv1D layout: y = x @ W + b.
  Llama: model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
         model.layers.{i}.self_attn.{q,k,v,o}_proj.weight ([out,in],
         y = x @ W.T), model.layers.{i}.post_attention_layernorm.weight,
         model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight,
         lm_head.weight unless tied.

forward(ids, targets=None) returns the mean cross-entropy loss when targets
are given, else the logits [B,S,V]. Everything is dtype-agnostic (float32 for
training, float64 for gradcheck).
"""
import json
import math
from dataclasses import dataclass, field, asdict
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ModelConfig", "parse_config", "load_config", "build_model",
           "named_params", "GPT2", "Llama", "RESIDUAL_PROJECTIONS"]

# Output projections into the residual stream (scaled init).
RESIDUAL_PROJECTIONS = ("attn.c_proj.weight", "mlp.c_proj.weight",
                        "self_attn.o_proj.weight", "mlp.down_proj.weight")


@dataclass
class ModelConfig:
    family: str                 # "gpt2" or "llama"
    hidden: int
    heads: int
    kv_heads: int
    layers: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    tie: bool
    rope_theta: float = 10000.0
    sliding_window: Optional[int] = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def head_dim(self):
        return self.hidden // self.heads

    def to_dict(self):
        d = asdict(self)
        d.pop("raw")
        return d


def _first(cfg, keys, default=None, required=True):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    if default is not None or not required:
        return default
    raise ValueError(f"config: missing key {' | '.join(keys)}")


def parse_config(cfg, layers=None):
    """Hugging Face config dict -> ModelConfig (defaults as the C++ importer).
    `layers` overrides the number of layers."""
    mt = cfg.get("model_type")
    if mt == "gpt2":
        act = cfg.get("activation_function") or "gelu_new"
        if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            raise ValueError(f"config: activation_function {act!r} is not supported")
        if cfg.get("scale_attn_weights", True) is False:
            raise ValueError("config: scale_attn_weights = false is not supported")
        if cfg.get("scale_attn_by_inverse_layer_idx"):
            raise ValueError("config: scale_attn_by_inverse_layer_idx is not supported")
        h = int(_first(cfg, ["n_embd", "hidden_size"]))
        heads = int(_first(cfg, ["n_head", "num_attention_heads"]))
        c = ModelConfig(
            family="gpt2", hidden=h, heads=heads, kv_heads=heads,
            layers=int(_first(cfg, ["n_layer", "num_hidden_layers"])),
            ffn=int(_first(cfg, ["n_inner"], 4 * h)),
            vocab=int(_first(cfg, ["vocab_size"])),
            max_positions=int(_first(cfg, ["n_positions", "max_position_embeddings", "n_ctx"])),
            eps=float(_first(cfg, ["layer_norm_epsilon"], 1e-5)),
            tie=bool(_first(cfg, ["tie_word_embeddings"], True)),
            raw=dict(cfg))
    elif mt in ("llama", "mistral"):
        act = cfg.get("hidden_act") or "silu"
        if act != "silu":
            raise ValueError(f"config: hidden_act {act!r} is not supported")
        for k in ("rope_scaling", "attention_bias", "mlp_bias"):
            if cfg.get(k):
                raise ValueError(f"config: {k} = {cfg[k]!r} is not supported")
        heads = int(_first(cfg, ["num_attention_heads"]))
        c = ModelConfig(
            family="llama", hidden=int(_first(cfg, ["hidden_size"])), heads=heads,
            kv_heads=int(_first(cfg, ["num_key_value_heads"], heads)),
            layers=int(_first(cfg, ["num_hidden_layers"])),
            ffn=int(_first(cfg, ["intermediate_size"])),
            vocab=int(_first(cfg, ["vocab_size"])),
            max_positions=int(_first(cfg, ["max_position_embeddings"])),
            eps=float(_first(cfg, ["rms_norm_eps"], 1e-6)),
            tie=bool(_first(cfg, ["tie_word_embeddings"], False)),
            rope_theta=float(_first(cfg, ["rope_theta"], 10000.0)),
            sliding_window=cfg.get("sliding_window"),
            raw=dict(cfg))
        hd = cfg.get("head_dim")
        if hd is not None and hd * c.heads != c.hidden:
            raise ValueError("config: head_dim * num_attention_heads must equal hidden_size")
    else:
        raise ValueError(f"config: model_type {mt!r} is not supported (gpt2, llama, mistral)")
    if layers is not None:
        c.layers = int(layers)
    for k in ("hidden", "heads", "kv_heads", "layers", "ffn", "vocab", "max_positions"):
        if getattr(c, k) <= 0:
            raise ValueError(f"config: {k} must be positive, got {getattr(c, k)}")
    if c.hidden % c.heads or c.heads % c.kv_heads:
        raise ValueError("config: hidden must divide by heads and heads by kv heads")
    if c.family == "llama" and c.head_dim % 2:
        raise ValueError("config: rotary embeddings need an even head_dim")
    return c


def load_config(path, layers=None):
    with open(path) as f:
        return parse_config(json.load(f), layers)


# ---------------------------------------------------------------------------
# Shared pieces


def causal_attention(q, k, v, sliding_window=None):
    """q [B,H,S,D], k/v [B,KV,S,D] -> [B,H,S,D]; query head h reads kv head
    h // (H/KV); scores scaled by 1/sqrt(D), causal mask, softmax."""
    B, H, S, D = q.shape
    KV = k.shape[1]
    if KV != H:
        rep = H // KV
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(D)
    i = torch.arange(S, device=q.device)
    masked = i[None, :] > i[:, None]  # key j after query i
    if sliding_window is not None:
        masked = masked | (i[:, None] - i[None, :] >= sliding_window)
    scores = scores.masked_fill(masked, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.matmul(p, v)


def _loss_or_logits(logits, targets):
    if targets is None:
        return logits
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


# ---------------------------------------------------------------------------
# GPT-2


class Conv1D(nn.Module):
    """Hugging Face Conv1D: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.heads
        self.c_attn = Conv1D(c.hidden, 3 * c.hidden)
        self.c_proj = Conv1D(c.hidden, c.hidden)

    def forward(self, x):
        B, S, h = x.shape
        H, D = self.heads, h // self.heads
        q, k, v = self.c_attn(x).split(h, dim=-1)
        q, k, v = (t.reshape(B, S, H, D).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v)
        y = y.transpose(1, 2).reshape(B, S, h)
        return self.c_proj(y)


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(c.hidden, c.ffn)
        self.c_proj = Conv1D(c.ffn, c.hidden)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.mlp = GPT2MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab, c.hidden)
        self.wpe = nn.Embedding(c.max_positions, c.hidden)
        self.h = nn.ModuleList(GPT2Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.hidden, eps=c.eps)
        if not c.tie:
            self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)

    def lm_weight(self):
        return self.wte.weight if self.config.tie else self.lm_head.weight

    def forward(self, ids, targets=None):
        B, S = ids.shape
        if S > self.config.max_positions:
            raise ValueError(f"sequence length {S} exceeds n_positions {self.config.max_positions}")
        x = self.wte(ids) + self.wpe.weight[:S]
        for blk in self.h:
            x = blk(x)
        x = self.ln_f(x)
        logits = torch.matmul(x, self.lm_weight().t())
        return _loss_or_logits(logits, targets)


# ---------------------------------------------------------------------------
# Llama


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(S, D, theta, dtype, device=None):
    """cos, sin [S, D] (Hugging Face layout: emb = cat(freqs, freqs)).
    Angles are computed in float64 (as the runtime's kernel does) and then
    cast to `dtype`."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    pos = torch.arange(S, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype=dtype, device=device), emb.sin().to(dtype=dtype, device=device)


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def apply_rope(x, cos, sin):
    """x [B,H,S,D]; cos/sin [S,D]."""
    return x * cos + rotate_half(x) * sin


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D = c.head_dim
        self.q_proj = nn.Linear(c.hidden, c.heads * D, bias=False)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * D, bias=False)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * D, bias=False)
        self.o_proj = nn.Linear(c.heads * D, c.hidden, bias=False)

    def forward(self, x, cos, sin):
        B, S, _ = x.shape
        c = self.c
        D = c.head_dim
        q = self.q_proj(x).reshape(B, S, c.heads, D).transpose(1, 2)
        k = self.k_proj(x).reshape(B, S, c.kv_heads, D).transpose(1, 2)
        v = self.v_proj(x).reshape(B, S, c.kv_heads, D).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        y = causal_attention(q, k, v, c.sliding_window)
        y = y.transpose(1, 2).reshape(B, S, c.heads * D)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.ffn, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.ffn, bias=False)
        self.down_proj = nn.Linear(c.ffn, c.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden, c.eps)
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden, c.eps)
        self.mlp = LlamaMLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden, c.eps)


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = LlamaBody(c)
        if not c.tie:
            self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)

    def lm_weight(self):
        return self.model.embed_tokens.weight if self.config.tie else self.lm_head.weight

    def forward(self, ids, targets=None):
        c = self.config
        B, S = ids.shape
        if S > c.max_positions:
            raise ValueError(f"sequence length {S} exceeds max_position_embeddings {c.max_positions}")
        if c.sliding_window is not None and S > c.sliding_window:
            raise ValueError(f"sequence length {S} exceeds sliding_window {c.sliding_window}")
        x = self.model.embed_tokens(ids)
        cos, sin = rope_cos_sin(S, c.head_dim, c.rope_theta, x.dtype, x.device)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        x = self.model.norm(x)
        logits = torch.matmul(x, self.lm_weight().t())
        return _loss_or_logits(logits, targets)


# ---------------------------------------------------------------------------


def build_model(config, layers=None):
    """config: a config.json path, a Hugging Face config dict or a
    ModelConfig. Returns a float32 GPT2 or Llama with torch's default
    initialisation (load a checkpoint or use train_ref.init_params)."""
    if isinstance(config, ModelConfig):
        c = config
        if layers is not None:
            c = ModelConfig(**{**asdict(c), "layers": int(layers)})
    elif isinstance(config, dict):
        c = parse_config(config, layers)
    else:
        c = load_config(config, layers)
    m = GPT2(c) if c.family == "gpt2" else Llama(c)
    return m.float()


def named_params(model):
    """Ordered [(hf_name, param)] in the order the forward pass first uses
    them (a tied LM head adds no entry)."""
    return list(model.named_parameters())
