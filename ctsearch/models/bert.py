"""A torch-only BERT encoder whose state dict, init and outputs match `transformers.BertModel`."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ctsearch.errors import CheckpointError, MissingFileError, UsageError

log = logging.getLogger(__name__)

ACTIVATIONS = {
    "gelu": F.gelu,  # exact (erf), as BERT
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu, "silu": F.silu, "swish": F.silu, "tanh": torch.tanh,
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class BertConfig:
    """The `transformers.BertConfig` fields an encoder-only BERT reads (same names, defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        """Known keys taken, others ignored; a variant this encoder cannot run is a UsageError."""
        reason = unsupported(d)
        if reason:
            raise UsageError(f"BERT config not supported by the native encoder: {reason}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


def unsupported(d: dict) -> str | None:
    """Why a BERT-family config dict needs `transformers` (None when the native encoder fits)."""
    if d.get("model_type", "bert") != "bert":
        return f"model_type {d['model_type']!r}"
    if d.get("position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {d['position_embedding_type']!r}"
    if d.get("is_decoder") or d.get("add_cross_attention"):
        return "decoder / cross-attention"
    if d.get("hidden_act", "gelu") not in ACTIVATIONS:
        return f"hidden_act {d['hidden_act']!r} (known: {sorted(ACTIVATIONS)})"
    return None


class BertEncoding(NamedTuple):
    """`[0]` is the last hidden state (B, L, hidden), as `transformers` outputs."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        positions = torch.arange(c.max_position_embeddings).expand((1, -1))
        self.register_buffer("position_ids", positions, persistent=False)
        self.register_buffer("token_type_ids", torch.zeros_like(positions), persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        length = input_ids.shape[1]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :length].expand_as(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(self.position_ids[:, :length])
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        if c.hidden_size % c.num_attention_heads:
            raise UsageError(f"hidden_size {c.hidden_size} is not a multiple of "
                             f"num_attention_heads {c.num_attention_heads}")
        self.heads, self.head_size = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        width = self.heads * self.head_size
        self.query = nn.Linear(c.hidden_size, width)
        self.key = nn.Linear(c.hidden_size, width)
        self.value = nn.Linear(c.hidden_size, width)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        shape = (*x.shape[:-1], self.heads, self.head_size)
        q, k, v = (proj(x).view(shape).transpose(1, 2) for proj in (self.query, self.key,
                                                                      self.value))
        p = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                             scale=self.head_size ** -0.5)
        return out.transpose(1, 2).reshape(*x.shape[:-1], -1)


class BertResidual(nn.Module):
    """dense -> dropout -> LayerNorm(+ residual): `BertSelfOutput` and `BertOutput`."""

    def __init__(self, c: BertConfig, width: int):
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertResidual(c, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidual(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """Encoder-only BERT with pooler; parameter and buffer names are those of transformers."""

    def __init__(self, config: BertConfig | dict):
        super().__init__()
        self.config = config if isinstance(config, BertConfig) else BertConfig.from_dict(config)
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config)
        self.pooler = BertPooler(self.config)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """transformers' init, module by module in the same (post-)order, so seeds agree."""
        std = self.config.initializer_range or 0.02
        for module in _post_order(self):
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()

    def save_pretrained(self, folder: str | Path) -> Path:
        """config.json + model.safetensors, a folder `from_pretrained` and transformers read."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"architectures": ["BertModel"], "model_type": "bert", **self.config.to_dict()}
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        sd = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertEncoding:
        x = self.embeddings(input_ids, token_type_ids)
        hidden = self.encoder(x, _key_mask(attention_mask))
        return BertEncoding(hidden, self.pooler(hidden))


def _post_order(module: nn.Module):
    for child in module.children():
        yield from _post_order(child)
    yield module


def _key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, L) 1/0 -> (B, 1, 1, L) keys to attend, None when nothing is padded.

    A boolean mask (as transformers passes to SDPA): padded keys get -inf before the softmax,
    whatever the dtype under autocast.
    """
    if mask is None or bool(mask.all()):
        return None
    return mask[:, None, None, :].bool()


def read_config(folder: str | Path) -> dict:
    """config.json of a model folder as a dict."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise MissingFileError(f"{path}: text encoder config not found")
    return json.loads(path.read_text())


def read_weights(folder: str | Path) -> dict:
    """The folder's state dict (safetensors, else weights_only torch.load); `bert.` stripped."""
    folder = Path(folder)
    path = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if path is None:
        raise MissingFileError(f"{folder}: no {' or '.join(WEIGHT_FILES)}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if any(k.startswith("bert.") for k in sd):
        sd = {k.removeprefix("bert."): v for k, v in sd.items() if k.startswith("bert.")}
    return sd


def from_pretrained(folder: str | Path) -> BertModel:
    """A native BertModel with a local folder's weights (nothing is downloaded).

    Heads (`cls.*`) and stale buffers are ignored; a missing pooler keeps its init (as
    `transformers` does); any other missing or mis-shaped tensor is a CheckpointError.
    """
    model = BertModel(read_config(folder))
    sd, own = read_weights(folder), model.state_dict()
    missing = sorted(set(own) - set(sd))
    if [k for k in missing if not k.startswith("pooler.")]:
        raise CheckpointError(f"{folder}: weights lack {missing[0]} ({len(missing)} missing)")
    if missing:
        log.warning("%s: no pooler weights; the pooler keeps its random init", folder)
    for k, t in own.items():
        if k in sd and tuple(sd[k].shape) != tuple(t.shape):
            raise CheckpointError(f"{folder}: shape mismatch for {k}: expected "
                                  f"{tuple(t.shape)}, found {tuple(sd[k].shape)}")
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return model
