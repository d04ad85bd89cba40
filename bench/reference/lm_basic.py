"""lm_basic.py - the basic (Zaremba-style) language models of Backpropamine Table 1, in PyTorch.

Written from the paper's equations (shared/reference/backpropamine.md §1.1 and §2.3 (b)), not from
dopa's code, to check examples/lm/basic_*.dopa against. Four kinds:

  'lstm'      baseline: f, i, o, g gates, each an input and a recurrent nn.Linear with bias;
  'plastic'   the recurrent h -> g path is w + alpha * Hebb (Eq. 1) with per-connection alpha and
              per-connection eta: Hebb <- clip(Hebb + eta * g_t (x) h_{t-1}, -2, 2) (Eq. 2);
  'modplast'  simple neuromodulation (Eq. 3): one modulator neuron per layer, M(t) = tanh(h2mod(h_{t-1})),
              fanned out to every plastic connection: eta_ij(t) = modfanout_ij * M(t);
  'modul'     retroactive neuromodulation (Eq. 4-5): PW <- clip(PW + modfanout * M(t) * E, -2, 2) with the
              old E, then E <- (1 - etaet) * E + etaet * g_t (x) h_{t-1} (etaet = sigmoid(etaet_logit),
              a learned scalar kept in (0, 1); basic_cells.dopa says why).

Layout: "row = postsynaptic", as dopa writes it: every matrix is W[post, pre] (so nn.Linear weights,
w, alpha, eta and modfanout all map one to one to the spec's parameters), a trace is (B, post, pre).
The Hebbian "output" is the cell candidate g (hebboutput 'i2c' of awd-lstm-lm/mylstm.py).

The network: embedding enc (V -> E), two layers l1 (E -> H) and l2 (H -> H), an untied decoder
dec = nn.Linear(H, V). Parameter and state names are the spec's (`l1.x2f.weight`, `l1.hebb`, ...), so
a dopa safetensors file loads with load_params(). The module also holds the data pipeline and the
training loop of the comparison (tests/pytorch/compare_lm.py): PyTorch word_language_model's
tokenisation and batchify, truncated BPTT with the state (traces included) carried and detached,
Zaremba's summed-over-time loss, clip_grad_norm_ and torch.optim.SGD.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402

KINDS = ("lstm", "plastic", "modplast", "modul")
# dopa's model names (`dopa train lm --model ...`, examples/lm/<model>.dopa) -> kind
MODELS = {"basic_lstm": "lstm", "basic_plastic_lstm": "plastic",
          "basic_modplast_lstm": "modplast", "basic_modul_lstm": "modul"}
NETWORKS = {"basic_lstm": "BasicLSTMLM", "basic_plastic_lstm": "BasicPlasticLSTMLM",
            "basic_modplast_lstm": "BasicModplastLSTMLM", "basic_modul_lstm": "BasicModulLSTMLM"}
CLIPVAL = 2.0      # hard clip of the plastic traces
INIT_SCALE = 0.1   # Zaremba's init_weight: ordinary weights ~ U(-0.1, 0.1)


class BasicCell(nn.Module):
    """One LSTM layer of the given kind, I inputs, H units."""

    def __init__(self, kind, I, H):
        super().__init__()
        assert kind in KINDS, kind
        self.kind, self.I, self.H = kind, I, H
        for g in "fioc":
            setattr(self, "x2" + g, nn.Linear(I, H))
        for g in ("fioc" if kind == "lstm" else "fio"):
            setattr(self, "h2" + g, nn.Linear(H, H))
        if kind != "lstm":
            self.w = nn.Parameter(torch.empty(H, H))
            self.alpha = nn.Parameter(torch.empty(H, H))
        if kind == "plastic":
            self.eta = nn.Parameter(torch.empty(H, H))
        if kind in ("modplast", "modul"):
            self.h2mod = nn.Linear(H, 1)
            self.modfanout = nn.Parameter(torch.empty(H, H))
        if kind == "modul":
            self.etaet_logit = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self, scale=INIT_SCALE):
        """The spec's initializers: weights U(-scale, scale); linear biases keep nn.Linear's default
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)); alpha U(0, 1e-4); eta 0.01; modfanout U(-1, 1); etaet_logit
        logit(0.01) = -4.59512."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(".weight") or name == "w":
                    p.uniform_(-scale, scale)
                elif name.endswith(".bias"):
                    fan_in = getattr(self, name.split(".")[0]).in_features
                    p.uniform_(-fan_in ** -0.5, fan_in ** -0.5)
            if self.kind != "lstm":
                self.alpha.uniform_(0.0, 1e-4)
            if self.kind == "plastic":
                self.eta.fill_(0.01)
            if self.kind in ("modplast", "modul"):
                self.modfanout.uniform_(-1.0, 1.0)
            if self.kind == "modul":
                self.etaet_logit.fill_(-4.59512)

    def state_shapes(self):
        H = self.H
        s = {"h": (H,), "c": (H,)}
        if self.kind in ("plastic", "modplast"):
            s["hebb"] = (H, H)
        elif self.kind == "modul":
            s["pw"] = (H, H)
            s["et"] = (H, H)
        return s

    def forward(self, x, s):
        """x: (B, I); s: {'h': (B, H), 'c': (B, H), 'hebb' | 'pw', 'et': (B, H, H)}. Returns (h_t, new s)."""
        h, c = s["h"], s["c"]
        f = torch.sigmoid(self.x2f(x) + self.h2f(h))
        i = torch.sigmoid(self.x2i(x) + self.h2i(h))
        o = torch.sigmoid(self.x2o(x) + self.h2o(h))
        if self.kind == "lstm":
            g = torch.tanh(self.x2c(x) + self.h2c(h))
        else:
            trace = s["pw"] if self.kind == "modul" else s["hebb"]        # (B, post, pre)
            # Eq. 1: sum_j (w_ij + alpha_ij Hebb_ij) h_j, as the fixed part plus the plastic part
            plastic = torch.einsum("bij,bj->bi", self.alpha * trace, h)
            g = torch.tanh(self.x2c(x) + F.linear(h, self.w) + plastic)
        cn = f * c + i * g
        hn = o * torch.tanh(cn)
        new = {"h": hn, "c": cn}
        if self.kind == "lstm":
            return hn, new
        hebbian = g.unsqueeze(2) * h.unsqueeze(1)                         # [b, post, pre] = g_i h_j
        if self.kind == "plastic":                                        # Eq. 2, eta per connection
            new["hebb"] = torch.clamp(s["hebb"] + self.eta * hebbian, -CLIPVAL, CLIPVAL)
            return hn, new
        M = torch.tanh(self.h2mod(h))                                     # (B, 1), from h_{t-1}
        eta = self.modfanout.unsqueeze(0) * M.unsqueeze(2)                # (B, H, H)
        if self.kind == "modplast":                                       # Eq. 3
            new["hebb"] = torch.clamp(s["hebb"] + eta * hebbian, -CLIPVAL, CLIPVAL)
        else:                                                             # Eq. 4-5 (old E first)
            new["pw"] = torch.clamp(s["pw"] + eta * s["et"], -CLIPVAL, CLIPVAL)
            etaet = torch.sigmoid(self.etaet_logit)
            new["et"] = (1 - etaet) * s["et"] + etaet * hebbian
        return hn, new


class BasicLM(nn.Module):
    """enc (V -> E) -> l1 (E -> H) -> l2 (H -> H) -> dec (H -> V), untied."""

    def __init__(self, kind, V, E, H):
        super().__init__()
        self.kind, self.V, self.E, self.H = kind, V, E, H
        self.enc = nn.Embedding(V, E)
        self.l1 = BasicCell(kind, E, H)
        self.l2 = BasicCell(kind, H, H)
        self.dec = nn.Linear(H, V)
        with torch.no_grad():
            self.enc.weight.uniform_(-INIT_SCALE, INIT_SCALE)
            self.dec.weight.uniform_(-INIT_SCALE, INIT_SCALE)
            self.dec.bias.uniform_(-H ** -0.5, H ** -0.5)

    @property
    def dtype(self):
        return self.enc.weight.dtype

    def layers(self):
        return {"l1": self.l1, "l2": self.l2}

    def zero_state(self, B):
        """{spec state name: zeros (B, ...)}: 'l1.h', 'l1.c', 'l1.hebb', ..."""
        return {f"{n}.{k}": torch.zeros((B,) + shape, dtype=self.dtype)
                for n, layer in self.layers().items() for k, shape in layer.state_shapes().items()}

    def hidden(self, tokens, state=None):
        """tokens: (T, B) int64; state: as zero_state() (None: zeros). Returns the top layer's
        outputs (T, B, H) and the new state."""
        T, B = tokens.shape
        state = self.zero_state(B) if state is None else state
        per_layer = {n: {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(n + ".")}
                     for n in self.layers()}
        outs = []
        for t in range(T):
            y = self.enc(tokens[t])
            for n, layer in self.layers().items():
                y, per_layer[n] = layer(y, per_layer[n])
            outs.append(y)
        new = {f"{n}.{k}": v for n, s in per_layer.items() for k, v in s.items()}
        return torch.stack(outs), new

    def forward(self, tokens, state=None):
        """tokens: (T, B) int64; state: as zero_state() (None: zeros). Returns logits (T, B, V), new state.
        The decoder runs once on the window's stacked outputs (one GEMM), as PyTorch users write it."""
        h, new = self.hidden(tokens, state)
        return self.dec(h), new


def make_model(kind, V, E, H, dtype=torch.float64):
    """kind: 'lstm' | 'plastic' | 'modplast' | 'modul', or a dopa model name ('basic_plastic_lstm')."""
    kind = MODELS.get(kind, kind)
    return BasicLM(kind, V, E, H).to(dtype)


def load_params(model, path_or_dict):
    """Load a safetensors file (or {name: array}) with the spec's names into model, strictly: every
    name and shape must match. Values are cast to the model's dtype. Returns the file's metadata."""
    if isinstance(path_or_dict, dict):
        params, meta = path_or_dict, {}
    else:
        params, meta = st.load(path_or_dict)
    own = dict(model.named_parameters())
    missing, extra = sorted(set(own) - set(params)), sorted(set(params) - set(own))
    if missing or extra:
        raise ValueError(f"parameter names differ: missing from the file {missing}, not in the model {extra}")
    with torch.no_grad():
        for name, p in own.items():
            v = torch.as_tensor(np.asarray(params[name]))
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"{name}: file shape {tuple(v.shape)}, model shape {tuple(p.shape)}")
            p.copy_(v.to(p.dtype))
    return meta


def params_numpy(model):
    return {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}


def save_params(model, path):
    st.save(path, params_numpy(model))


# ---- data: PyTorch word_language_model's data.py / main.py --------------------------------------

class Corpus:
    """The split in `path`: ptb.train.txt, ptb.valid.txt, ptb.test.txt as dopa reads them
    (runtime/train/Corpus.cpp), or train.txt, valid.txt, test.txt (word_language_model's names).
    Tokens per line: line.split() + ['<eos>']; the vocabulary is built from the training file in
    order of first occurrence; valid and test are read with it (a word it lacks is an error)."""

    def __init__(self, path):
        self.word2idx, self.idx2word = {}, []
        self.train = self._tokenize(self._file(path, "train"), grow=True)
        self.valid = self._tokenize(self._file(path, "valid"), grow=False)
        self.test = self._tokenize(self._file(path, "test"), grow=False)

    @staticmethod
    def _file(path, split):
        for name in (f"ptb.{split}.txt", f"{split}.txt"):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        if split == "train":
            raise FileNotFoundError(f"{path}: neither ptb.train.txt nor train.txt")
        return None

    def _tokenize(self, path, grow):
        if path is None:
            return None
        ids = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                for word in line.split() + ["<eos>"]:
                    if word not in self.word2idx:
                        if not grow:
                            raise ValueError(f"{path}: '{word}' is not in the training vocabulary")
                        self.word2idx[word] = len(self.idx2word)
                        self.idx2word.append(word)
                    ids.append(self.word2idx[word])
        return torch.tensor(ids, dtype=torch.int64)


def batchify(ids, B):
    """Trim to nbatch * B tokens and lay them out as (nbatch, B): column b is the b-th contiguous chunk."""
    nbatch = ids.numel() // B
    return ids[:nbatch * B].view(B, -1).t().contiguous()


def windows(nbatch, bptt):
    """(start, seq_len) of the truncated-BPTT windows over a (nbatch, B) stream."""
    return [(i, min(bptt, nbatch - 1 - i)) for i in range(0, nbatch - 1, bptt)]


def train_windows(model, data, bptt, lr, clip, l2, limit=None, state=None):
    """One pass of training over data (nbatch, B), the first `limit` windows only if given.
    Per window: loss_sum = sum over steps of the batch-mean cross-entropy (Zaremba); backward;
    clip_grad_norm_ (the norm before clipping is logged); SGD with weight_decay l2 (g += l2 * p after
    clipping; p -= lr * g). The state, traces included, starts at zero and is carried, detached.
    Returns ([{'loss': loss_sum / seq_len, 'grad_norm': ...}], final state)."""
    B = data.shape[1]
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=lr, weight_decay=l2)
    state = model.zero_state(B) if state is None else state
    rows = []
    for k, (i, seq_len) in enumerate(windows(data.shape[0], bptt)):
        if limit is not None and k >= limit:
            break
        x, y = data[i:i + seq_len], data[i + 1:i + 1 + seq_len]
        state = {n: v.detach() for n, v in state.items()}
        logits, state = model(x, state)
        loss_sum = F.cross_entropy(logits.reshape(-1, model.V), y.reshape(-1), reduction="sum") / B
        opt.zero_grad()
        loss_sum.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        rows.append({"loss": loss_sum.item() / seq_len, "grad_norm": float(norm)})
    return rows, state
