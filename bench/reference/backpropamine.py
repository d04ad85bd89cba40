"""backpropamine.py - PyTorch implementations of the paper's networks, written from the equations.

An independent formulation to check dopa against (shared/reference/backpropamine.md):
  - RLNet: the four RL variants of sr/modul.py and maze/batch.py ("row = postsynaptic" layout:
    weights W[post, pre], traces (B, H, H) per batch element, recurrent input as a batched matmul
    exactly as the reference code writes it);
  - PlasticLSTMLM: the language models of awd-lstm-lm/mylstm.py, in the reference code's own
    "column = postsynaptic" layout (w[pre, post], h_prev.bmm(w + alpha * hebb)); load_dopa()
    transposes dopa's W[post, pre] parameters into it.
Parameter names follow the spec files, so a dopa parameter file loads with load_dopa().
"""
import torch
import torch.nn as nn


class RLNet(nn.Module):
    """variant: 'rnn' | 'plastic' | 'modplast' | 'modul'."""

    def __init__(self, variant, I, H, A):
        super().__init__()
        self.variant, self.H = variant, H
        self.i2h = nn.Linear(I, H)
        self.w = nn.Parameter(0.01 * torch.rand(H, H))
        if variant != "rnn":
            self.alpha = nn.Parameter(0.01 * torch.rand(H, H))
        if variant == "plastic":
            self.eta = nn.Parameter(torch.tensor(0.1))
        if variant == "modul":
            self.etaet = nn.Parameter(torch.tensor(0.1))
        if variant in ("modplast", "modul"):
            self.h2DA = nn.Linear(H, 1)
        self.h2o = nn.Linear(H, A)
        self.h2v = nn.Linear(H, 1)

    def forward(self, x):
        """x: (T, B, I). Returns {output name: (T, B, n)} like the spec's outputs."""
        T, B, _ = x.shape
        H = self.H
        h = torch.zeros(B, H, dtype=x.dtype)
        hebb = torch.zeros(B, H, H, dtype=x.dtype)   # hebb (plastic, modplast) or pw (modul)
        et = torch.zeros(B, H, H, dtype=x.dtype)
        outs = {"logits": [], "value": [], "DAout": []}
        self.saturated = 0  # trace entries held at the clip bound, summed over steps (for tests)
        for t in range(T):
            if self.variant == "rnn":
                rec = torch.matmul(self.w, h.view(B, H, 1)).view(B, H)
            else:
                rec = torch.matmul(self.w + self.alpha * hebb, h.view(B, H, 1)).view(B, H)
            hn = torch.tanh(self.i2h(x[t]) + rec)
            deltahebb = torch.bmm(hn.view(B, H, 1), h.view(B, 1, H))  # [b, post, pre]
            if self.variant == "plastic":
                hebb = torch.clamp(hebb + self.eta * deltahebb, -1.0, 1.0)
            elif self.variant == "modplast":
                DA = torch.tanh(self.h2DA(hn))
                hebb = torch.clamp(hebb + DA.view(B, 1, 1) * deltahebb, -1.0, 1.0)
                outs["DAout"].append(DA)
            elif self.variant == "modul":
                DA = torch.tanh(self.h2DA(hn))
                hebb = torch.clamp(hebb + DA.view(B, 1, 1) * et, -1.0, 1.0)   # uses the old et
                et = (1 - self.etaet) * et + self.etaet * deltahebb
                outs["DAout"].append(DA)
            if self.variant != "rnn":
                self.saturated += int((hebb.abs() >= 1.0).sum())
            h = hn
            outs["logits"].append(self.h2o(hn))
            outs["value"].append(self.h2v(hn))
        return {k: torch.stack(v) for k, v in outs.items() if v}

    def load_dopa(self, params):
        """params: {spec name: ndarray}. The RL layout equals dopa's, so names map one to one."""
        state = {k: torch.as_tensor(v) for k, v in params.items()}
        self.load_state_dict(state, strict=True)

    def grads_as_dopa(self):
        return {n: p.grad.detach().numpy() for n, p in self.named_parameters()}


class LSTMCellRef(nn.Module):
    """kind: 'lstm' (MyLSTM), 'plastic' (modultype none), 'modplast' (modplasth2mod + fanout),
    'modul' (retroactive, Eq. 4-5). Reference layout: w[pre, post], alpha (1, 1, H) per post column."""

    def __init__(self, kind, I, H):
        super().__init__()
        self.kind, self.H = kind, H
        for g in ("f", "i", "o", "c"):
            setattr(self, "x2" + g, nn.Linear(I, H))
        for g in ("f", "i", "o") + (("c",) if kind == "lstm" else ()):
            setattr(self, "h2" + g, nn.Linear(H, H))
        if kind != "lstm":
            self.w = nn.Parameter(0.02 * torch.rand(H, H) - 0.01)
            self.alpha = nn.Parameter(0.0001 * torch.rand(1, 1, H))
        if kind == "plastic":
            self.eta = nn.Parameter(torch.tensor(0.01))
        if kind == "modul":
            self.etaet = nn.Parameter(torch.tensor(0.01))
        if kind in ("modplast", "modul"):
            self.h2mod = nn.Linear(H, 1)
            self.modfanout = nn.Linear(1, H)

    def init_state(self, B, dtype):
        z = torch.zeros(B, self.H, dtype=dtype)
        zz = torch.zeros(B, self.H, self.H, dtype=dtype)
        return {"h": z, "c": z, "hebb": zz, "et": zz}

    def forward(self, x, s):
        B, H = x.shape[0], self.H
        h, c = s["h"], s["c"]
        f = torch.sigmoid(self.x2f(x) + self.h2f(h))
        i = torch.sigmoid(self.x2i(x) + self.h2i(h))
        o = torch.sigmoid(self.x2o(x) + self.h2o(h))
        if self.kind == "lstm":
            g = torch.tanh(self.x2c(x) + self.h2c(h))
        else:
            g = torch.tanh(self.x2c(x) + h.unsqueeze(1).bmm(self.w + self.alpha * s["hebb"]).squeeze(1))
        cn = f * c + i * g
        hn = o * torch.tanh(cn)
        new = {"h": hn, "c": cn, "hebb": s["hebb"], "et": s["et"]}
        if self.kind == "lstm":
            return hn, new
        self.saturated = getattr(self, "saturated", 0)
        delta = torch.bmm(h.unsqueeze(2), g.unsqueeze(1))  # [b, pre, post], hebboutput i2c
        if self.kind == "plastic":
            new["hebb"] = torch.clamp(s["hebb"] + self.eta * delta, -2.0, 2.0)
        else:
            M = torch.tanh(self.h2mod(hn))                    # (B, 1)
            eta = self.modfanout(M.unsqueeze(2))               # (B, 1, H): one rate per post column
            if self.kind == "modplast":
                new["hebb"] = torch.clamp(s["hebb"] + eta * delta, -2.0, 2.0)
            else:
                new["hebb"] = torch.clamp(s["hebb"] + eta * s["et"], -2.0, 2.0)
                new["et"] = (1 - self.etaet) * s["et"] + self.etaet * delta
        self.saturated += int((new["hebb"].abs() >= 2.0).sum())
        return hn, new


class PlasticLSTMLM(nn.Module):
    def __init__(self, kind, V, E, H):
        super().__init__()
        self.enc = nn.Embedding(V, E)
        self.dec_bias = nn.Parameter(torch.zeros(V))
        self.l1, self.l2, self.l3 = LSTMCellRef(kind, E, H), LSTMCellRef(kind, H, H), LSTMCellRef(kind, H, E)

    # awd-lstm-lm's dropouts (mask names as in examples/lm/*.dopa): locked dropout after the
    # embedding (drop_i), between the layers (drop_h1, drop_h2) and on the last output (drop_o),
    # each (B, n) held over the window; embedding dropout drop_e (V, 1), rows of the lookup only.
    LOCKED = ("drop_i", "drop_h1", "drop_h2", "drop_o")

    def forward(self, tok, masks=None):
        """tok: (T, B) int64; masks: name -> tensor (None: dropout off). Returns
        {'logits': (T, B, V), 'ar_h': (T, B, E), 'tar_h': (T, B, E)}: the decoder tied to enc (the
        unmasked weight), the last layer's output after and before its dropout (for AR / TAR)."""
        T, B = tok.shape
        dtype = self.enc.weight.dtype
        states = [l.init_state(B, dtype) for l in (self.l1, self.l2, self.l3)]
        weight = self.enc.weight if masks is None else self.enc.weight * masks["drop_e"]
        after = [None] * 4 if masks is None else [masks[n] for n in self.LOCKED]
        logits, dropped, undropped = [], [], []
        for t in range(T):
            y = torch.nn.functional.embedding(tok[t], weight)
            if after[0] is not None:
                y = y * after[0]
            for k, layer in enumerate((self.l1, self.l2, self.l3)):
                y, states[k] = layer(y, states[k])
                if k == 2:
                    undropped.append(y)
                if after[k + 1] is not None:
                    y = y * after[k + 1]
            dropped.append(y)
            logits.append(y @ self.enc.weight.t() + self.dec_bias)
        return {"logits": torch.stack(logits), "ar_h": torch.stack(dropped),
                "tar_h": torch.stack(undropped)}

    # dopa stores w as W[post, pre] and alpha as [H, 1]; the reference stores w[pre, post], (1, 1, H).
    @staticmethod
    def _to_ref(name, v):
        if name.endswith(".w"):
            return v.T
        if name.endswith(".alpha"):
            return v.reshape(1, 1, -1)
        return v

    @staticmethod
    def _to_dopa(name, v, shape):
        if name.endswith(".w"):
            return v.T
        if name.endswith(".alpha"):
            return v.reshape(shape)
        return v

    def load_dopa(self, params):
        state = {k: torch.as_tensor(self._to_ref(k, v).copy()) for k, v in params.items()}
        self.load_state_dict(state, strict=True)

    def grads_as_dopa(self, shapes):
        return {n: self._to_dopa(n, p.grad.detach().numpy(), shapes[n]) for n, p in self.named_parameters()}
